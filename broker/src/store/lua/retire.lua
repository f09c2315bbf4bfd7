-- Retires a deleted queue's or topic's incarnation (see incarnation.lua).
-- KEYS[1] = its incarnation marker, KEYS[2..] = its keys to drop; ARGV[1] = the deleted
-- incarnation (its znode's czxid). Returns 0, dropping nothing, when a newer incarnation (the
-- name created again meanwhile) owns the keys already.
local gone = tonumber(ARGV[1])
local marker = tonumber(redis.call('GET', KEYS[1]) or '0')
if math.abs(marker) > gone then return 0 end
redis.call('SET', KEYS[1], -gone)
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
