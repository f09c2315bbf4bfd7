-- Stores messages in a queue. KEYS[8] = id sequence; KEYS[9..] = dedup keys.
-- ARGV[2..]: channel, wake key, n, then per message: payload, delay_ms, dedup key index (0 = none).
-- Returns per message: id, 1 when stored now or 0 when a dedup key named an earlier message.
local now = now_ms()
local n = tonumber(ARGV[4])
local out = {}
local stored = false
for i = 0, n - 1 do
  local payload = ARGV[5 + i * 3]
  local delay = tonumber(ARGV[6 + i * 3])
  local dk = tonumber(ARGV[7 + i * 3])
  stored = store_once(out, KEYS[8], dk, function(id)
    redis.call('HSET', KEYS[1], id, payload)
    redis.call('ZADD', KEYS[6], now, id)
    redis.call('ZADD', KEYS[3], now + delay, id)
    if delay > 0 then redis.call('ZADD', KEYS[5], now + delay, id) end
  end) or stored
end
if stored then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return out
