-- Stores messages in a FIFO queue: send.lua, plus each message's group (fifo.lua). KEYS as
-- send.lua; ARGV[2..]: channel, wake key, n, incarnation, then per message: payload, delay_ms,
-- dedup key index (0 = none), group; last, the dedup window in seconds. Returns as send.lua.
-- Announces messages of groups not held (a held group's messages wait for its release).
local leftovers = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]}
for _, k in ipairs(FIFO_KEYS) do leftovers[#leftovers + 1] = k end
if not incarnation_ok(KEYS[9], tonumber(ARGV[5]), leftovers) then
  return {'MOMGONE', -1}
end
local now = now_ms()
local n = tonumber(ARGV[4])
local window_s = tonumber(ARGV[6 + n * 4])
local out = {}
local stored = false
local visible, first_delay = 0, nil
for i = 0, n - 1 do
  local payload = ARGV[6 + i * 4]
  local delay = tonumber(ARGV[7 + i * 4])
  local dk = tonumber(ARGV[8 + i * 4])
  local g = ARGV[9 + i * 4]
  stored = store_once(out, KEYS[8], dk, window_s, n - i, function(id)
    stage(id, payload, now, now + delay, delay > 0)
    redis.call('HSET', GM, id, g)
    redis.call('ZADD', GO, 0, g .. '\n' .. id)
    if not held(g) then
      -- A group already ready keeps its head (and its score).
      redis.call('ZADD', RG, 'NX', now + delay, g)
      if delay > 0 then
        first_delay = math.min(first_delay or delay, delay)
      else
        visible = visible + 1
      end
    end
  end) or stored
end
store_staged()
keep_dedup(window_s)
if stored and (visible > 0 or first_delay) then
  local note = ARGV[3] .. ' ' .. visible
  if first_delay then note = note .. ' ' .. first_delay end
  redis.call('PUBLISH', ARGV[2], note)
end
return out
