-- Which of the given deliveries (pairs of id, delivery number in ARGV[2..]) are still in flight:
-- a stream's bound on unacked messages. Returns 1 or 0 per pair.
local now = now_ms()
local out = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local deadline = redis.call('ZSCORE', KEYS[4], id)
  local live = deadline and tonumber(deadline) > now and redis.call('HGET', KEYS[2], id) == ARGV[i + 1]
  out[#out + 1] = live and 1 or 0
end
return out
