-- Which of the given deliveries (pairs of id, delivery number in ARGV[2..]) are still in flight:
-- a stream's bound on unacked messages. Returns 1 or 0 per pair. Two calls for all of them
-- (many.lua).
local now = now_ms()
local ids, rcs = {}, {}
for i = 2, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  rcs[#rcs + 1] = ARGV[i + 1]
end
local deadlines = many('ZMSCORE', KEYS[4], ids)
local have = many('HMGET', KEYS[2], ids)
local out = {}
for i = 1, #ids do
  local live = deadlines[i] and tonumber(deadlines[i]) > now and have[i] == rcs[i]
  out[i] = live and 1 or 0
end
return out
