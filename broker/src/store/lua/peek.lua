-- Peek: reads up to `limit` messages in one state without changing anything (no trim, no
-- receive count, no visibility, no order). ARGV[2..]: state ('available' | 'in_flight' |
-- 'delayed'), limit, retention_ms (messages older than retention are skipped, not removed:
-- removing them is left to receive and stats, so that a peek is a pure read).
-- Returns {now, {id, payload, delivery number, sent_at, visible_at, ...}}, in the order a receive
-- would take them for 'available' (visible-at, then id) and by deadline for the others.
local now = now_ms()
local state = ARGV[2]
local limit = tonumber(ARGV[3])
local oldest_kept = now - tonumber(ARGV[4])
local ids
if state == 'available' then
  ids = redis.call('ZRANGE', KEYS[3], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit * 2)
elseif state == 'in_flight' then
  ids = redis.call('ZRANGE', KEYS[4], '(' .. now, '+inf', 'BYSCORE', 'LIMIT', 0, limit * 2)
else
  ids = redis.call('ZRANGE', KEYS[5], '(' .. now, '+inf', 'BYSCORE', 'LIMIT', 0, limit * 2)
end
local res = {}
local got = 0
for _, id in ipairs(ids) do
  if got >= limit then break end
  local payload = redis.call('HGET', KEYS[1], id)
  local sent = redis.call('ZSCORE', KEYS[6], id)
  local visible = redis.call('ZSCORE', KEYS[3], id)
  if payload and sent and visible and tonumber(sent) > oldest_kept then
    res[#res + 1] = id
    res[#res + 1] = payload
    res[#res + 1] = redis.call('HGET', KEYS[2], id) or '0'
    res[#res + 1] = sent
    -- A fair queue's grouped messages are scored with a virtual time that may lie before
    -- they were sent (lua/send.lua): they have been visible since they were sent.
    if tonumber(visible) < tonumber(sent) then visible = sent end
    res[#res + 1] = visible
    got = got + 1
  end
end
return {now, res}
