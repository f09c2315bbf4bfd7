-- Exact counts at this instant. ARGV[2]: retention_ms.
-- Returns {available, in_flight, delayed, oldest_sent_ms or -1, now, trimmed, outbox[, groups in flight]}.
local now = now_ms()
local trimmed = trim(now, tonumber(ARGV[2]))
local available = redis.call('ZCOUNT', KEYS[3], '-inf', now)
local in_flight = redis.call('ZCOUNT', KEYS[4], '(' .. now, '+inf')
local delayed = redis.call('ZCOUNT', KEYS[5], '(' .. now, '+inf')
local oldest = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
local oldest_ms = -1
if #oldest > 0 then oldest_ms = tonumber(oldest[2]) end
local res = {available, in_flight, delayed, oldest_ms, now, trimmed, redis.call('HLEN', KEYS[7])}
-- A FIFO queue (fifo.lua) adds how many groups have messages in flight.
if fifo_stats then res[#res + 1] = fifo_stats(now) end
return res
