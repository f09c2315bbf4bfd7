-- Cluster-wide token bucket of one user (KEYS[1]). ARGV: rate per second, burst, tokens wanted.
-- Nodes lease tokens in small batches, so most requests never reach Redis.
-- Returns {tokens granted, ms until one token is available when none was granted}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local take = math.min(want, math.floor(tokens))
tokens = tokens - take
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
local retry = 0
if take == 0 then retry = math.ceil((1 - tokens) * 1000 / rate) end
return {take, retry}
