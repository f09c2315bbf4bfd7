-- Retires a deleted queue's incarnation. KEYS[8] = the queue's incarnation marker;
-- ARGV[2] = the deleted incarnation (its znode's czxid). The marker holds the newest incarnation
-- Redis has seen, negative once deleted; send.lua refuses sends for an older or deleted one.
local gone = tonumber(ARGV[2])
local marker = tonumber(redis.call('GET', KEYS[8]) or '0')
-- A newer incarnation (the queue created again meanwhile) owns the keys now: leave them.
if math.abs(marker) > gone then return 0 end
redis.call('SET', KEYS[8], -gone)
for i = 1, 7 do redis.call('DEL', KEYS[i]) end
return 1
