-- Publishes messages and fans each out to every subscription whose filter matches, atomically
-- with the registry: a subscription registered before this call gets every matching message.
-- KEYS[4] id sequence, KEYS[5] incarnation marker, KEYS[6..] dedup keys.
-- ARGV: channel, the subscriptions' wake key prefix (`s/TOPIC/`), subscription prefix,
-- retention_ms, n, the topic's incarnation as the publishing node knows it (0 = unchecked), then
-- per message: payload, attributes JSON, publisher, dedup key index (0 = none); last, how long a
-- dedup key lives in seconds.
-- Announces, in one message, a line `s/TOPIC/SUB N` per subscription that got N messages
-- (waiters.rs), so long polls of each subscription wake for its own messages.
-- Returns {trimmed, {id, 1 stored now | 0 dedup hit, ...}}, or {-1, {}} when the incarnation was
-- deleted or replaced (a stale cache).
if not incarnation_ok(KEYS[5], tonumber(ARGV[6]), {}) then return {-1, {}} end
local now = now_ms()
local subs = {}
local reg = redis.call('HGETALL', KEYS[3])
for i = 1, #reg, 2 do
  subs[#subs + 1] = { name = reg[i], prefix = ARGV[3] .. reg[i] .. ':', spec = cjson.decode(reg[i + 1]), got = 0 }
end
local n = tonumber(ARGV[5])
local window_s = tonumber(ARGV[7 + n * 4])
local out = {}
-- Staged, then written for every message at once: one call per key (many.lua).
local payloads, log = {}, {}
for _, s in ipairs(subs) do s.pairs = {} end
for i = 0, n - 1 do
  local payload = ARGV[7 + i * 4]
  local attrs = cjson.decode(ARGV[8 + i * 4])
  local publisher = ARGV[9 + i * 4]
  local dk = tonumber(ARGV[10 + i * 4])
  store_once(out, KEYS[4], dk, window_s, n - i, function(id)
    payloads[#payloads + 1] = id
    payloads[#payloads + 1] = payload
    log[#log + 1] = now
    log[#log + 1] = id
    for _, s in ipairs(subs) do
      if matches(s.spec, attrs, publisher) then
        s.pairs[#s.pairs + 1] = now
        s.pairs[#s.pairs + 1] = id
        s.got = s.got + 1
      end
    end
  end)
end
many('HSET', KEYS[1], payloads)
many('ZADD', KEYS[2], log)
for _, s in ipairs(subs) do
  many('ZADD', s.prefix .. 'sent', s.pairs)
  many('ZADD', s.prefix .. 'vis', s.pairs)
end
keep_dedup(window_s)
local trimmed = trim_log(now, tonumber(ARGV[4]))
local lines = {}
for _, s in ipairs(subs) do
  if s.got > 0 then lines[#lines + 1] = ARGV[2] .. s.name .. ' ' .. s.got end
end
if #lines > 0 then redis.call('PUBLISH', ARGV[1], table.concat(lines, '\n')) end
return {trimmed, out}
