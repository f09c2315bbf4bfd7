-- Redrive, step one: moves visible messages (not in flight, not delayed) with an id below ARGV[3]
-- into the outbox, addressed to ARGV[2] ('' = back to each message's mom.source_queue).
-- ARGV[4] bounds one call. Returns how many were taken.
local now = now_ms()
local ids = redis.call('ZRANGE', KEYS[3], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[4]))
local n = 0
local taken = {}
for _, id in ipairs(ids) do
  if id < ARGV[3] then
    local payload = redis.call('HGET', KEYS[1], id)
    if payload then
      redis.call('HSET', KEYS[7], id, 'redrive\n' .. ARGV[2] .. '\n' .. payload)
      n = n + 1
    end
    taken[#taken + 1] = id
  end
end
remove_all(taken)
return n
