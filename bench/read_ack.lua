-- redis-benchmark baseline: receive and ack one message of a stream in one round trip
-- (XREADGROUP of one entry, XACK, XDEL: an acked message is gone for good). KEYS[1] = stream.
local r = redis.call('XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', 1, 'STREAMS', KEYS[1], '>')
if not r then return false end
local id = r[1][2][1][1]
redis.call('XACK', KEYS[1], 'g', id)
redis.call('XDEL', KEYS[1], id)
return id
