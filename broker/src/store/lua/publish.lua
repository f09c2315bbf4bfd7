-- Publishes messages and fans each out to every subscription whose filter matches, atomically
-- with the registry: a subscription registered before this call gets every matching message.
-- KEYS[4] id sequence, KEYS[5] incarnation marker, KEYS[6..] dedup keys.
-- ARGV: channel, wake key, subscription prefix, retention_ms, n, the topic's incarnation as the
-- publishing node knows it (0 = unchecked), then per message:
-- payload, attributes JSON, publisher, dedup key index (0 = none).
-- Returns {trimmed, {id, 1 stored now | 0 dedup hit, ...}}, or {-1, {}} when the incarnation was
-- deleted or replaced (a stale cache).
if not incarnation_ok(KEYS[5], tonumber(ARGV[6]), {}) then return {-1, {}} end
local now = now_ms()
local subs = {}
local reg = redis.call('HGETALL', KEYS[3])
for i = 1, #reg, 2 do
  subs[#subs + 1] = { prefix = ARGV[3] .. reg[i] .. ':', spec = cjson.decode(reg[i + 1]) }
end
local n = tonumber(ARGV[5])
local out = {}
local fanned = false
for i = 0, n - 1 do
  local payload = ARGV[7 + i * 4]
  local attrs = cjson.decode(ARGV[8 + i * 4])
  local publisher = ARGV[9 + i * 4]
  local dk = tonumber(ARGV[10 + i * 4])
  store_once(out, KEYS[4], dk, function(id)
    redis.call('HSET', KEYS[1], id, payload)
    redis.call('ZADD', KEYS[2], now, id)
    for _, s in ipairs(subs) do
      if matches(s.spec, attrs, publisher) then
        redis.call('ZADD', s.prefix .. 'sent', now, id)
        redis.call('ZADD', s.prefix .. 'vis', now, id)
        fanned = true
      end
    end
  end)
end
local trimmed = trim_log(now, tonumber(ARGV[4]))
if fanned then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return {trimmed, out}
