-- Ack, nack or visibility change of deliveries named by receipts.
-- ARGV: channel, queue name, mode ('ack' | 'nack' | 'vis'), ms (nack delay or new visibility timeout),
-- then pairs of id, receive count. Returns 1 (done) or 0 (stale or unknown receipt) per pair.
local now = now_ms()
local mode = ARGV[3]
local ms = tonumber(ARGV[4])
local out = {}
local wake = false
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  if current_delivery(id, ARGV[i + 1]) then
    if mode == 'ack' then
      remove(id)
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
if wake then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return out
