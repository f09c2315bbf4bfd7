-- Ack, nack or visibility change of deliveries named by receipts.
-- ARGV[2..]: channel, wake key, mode ('ack' | 'nack' | 'vis'), ms (nack delay or new visibility
-- timeout), '1' to announce acks too (streams wait for free in-flight slots), then pairs of id,
-- delivery number. Returns 1 (done) or 0 (stale or unknown receipt) per pair.
local now = now_ms()
local mode = ARGV[4]
local ms = tonumber(ARGV[5])
local out = {}
local wake = false
for i = 7, #ARGV, 2 do
  local id = ARGV[i]
  if current_delivery(id, ARGV[i + 1]) then
    if mode == 'ack' then
      remove(id)
      wake = wake or ARGV[6] == '1'
    elseif mode == 'nack' then
      redis.call('ZADD', KEYS[3], now + ms, id)
      redis.call('ZREM', KEYS[4], id)
      if ms > 0 then redis.call('ZADD', KEYS[5], now + ms, id) end
      wake = true
    else
      redis.call('ZADD', KEYS[3], now + ms, id)
      redis.call('ZADD', KEYS[4], now + ms, id)
      wake = wake or ms == 0
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if wake then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return out
