-- Trims the log to its retention and counts it. ARGV: retention_ms.
-- Returns {retained, oldest published ms or -1, now, trimmed}.
local now = now_ms()
local trimmed = trim_log(now, tonumber(ARGV[1]))
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local oldest_ms = -1
if #oldest > 0 then oldest_ms = tonumber(oldest[2]) end
return {redis.call('ZCARD', KEYS[2]), oldest_ms, now, trimmed}
