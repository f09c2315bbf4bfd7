-- Stores messages in a queue. KEYS[8] = id sequence; KEYS[9] = incarnation marker;
-- KEYS[10..] = dedup keys.
-- ARGV[2..]: channel, wake key, n, the queue's incarnation as the sending node knows it (its
-- znode's czxid; 0 = unchecked), then per message: payload, delay_ms, dedup key index (0 = none);
-- last, how long a dedup key lives in seconds.
-- Returns per message: id, 1 when stored now or 0 when a dedup key named an earlier message; or
-- the pair 'MOMGONE', -1 when the incarnation was deleted or replaced (a stale cache).
-- Announces what it stored as `KEY N` (N visible now) or `KEY N D` (and the first delayed one
-- visible in D ms), so each node wakes that many long polls (waiters.rs).
if not incarnation_ok(KEYS[9], tonumber(ARGV[5]), {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]}) then
  return {'MOMGONE', -1}
end
local now = now_ms()
local n = tonumber(ARGV[4])
local window_s = tonumber(ARGV[6 + n * 3])
local out = {}
local stored = false
local visible, first_delay = 0, nil
for i = 0, n - 1 do
  local payload = ARGV[6 + i * 3]
  local delay = tonumber(ARGV[7 + i * 3])
  local dk = tonumber(ARGV[8 + i * 3])
  stored = store_once(out, KEYS[8], dk, window_s, function(id)
    redis.call('HSET', KEYS[1], id, payload)
    redis.call('ZADD', KEYS[6], now, id)
    redis.call('ZADD', KEYS[3], now + delay, id)
    if delay > 0 then
      redis.call('ZADD', KEYS[5], now + delay, id)
      first_delay = math.min(first_delay or delay, delay)
    else
      visible = visible + 1
    end
  end) or stored
end
if stored then
  local note = ARGV[3] .. ' ' .. visible
  if first_delay then note = note .. ' ' .. first_delay end
  redis.call('PUBLISH', ARGV[2], note)
end
return out
