-- Delivers from a FIFO queue (fifo.lua): from the ready groups whose head is visible, oldest
-- head first, each group's messages in order (several of one group may go to this one receive,
-- as on SQS), stopping in a group at its first message not visible; each group it took from is
-- held until every delivery of it is settled or timed out. ARGV and answer as receive.lua; the
-- next visible-at is the earliest of a hold's end and a ready group's head becoming visible, and
-- `more` counts ready groups still receivable.
local now = now_ms()
local max = tonumber(ARGV[2])
local vt = tonumber(ARGV[3])
local max_receives = tonumber(ARGV[4])
local dlq = ARGV[5]
local expired_at = now - tonumber(ARGV[6])
local trimmed = trim_sometimes(now, tonumber(ARGV[6]))
release_expired(now)
local res = {}
local got, dead = 0, 0
-- Bounds the work of one call however many dead letters or stale entries it meets.
local budget = max * 4 + 100
while got < max and budget > 0 do
  local groups = redis.call('ZRANGE', RG, '-inf', now, 'BYSCORE', 'LIMIT', 0, max - got)
  if #groups == 0 then break end
  for _, g in ipairs(groups) do
    if got >= max or budget <= 0 then break end
    local took = 0
    for _, id in ipairs(group_ids(g, max - got)) do
      budget = budget - 1
      local at = redis.call('ZSCORE', KEYS[3], id)
      if at and tonumber(at) > now then break end
      if not at then
        remove(id)
      else
        local outcome = deliver(id, now, vt, max_receives, dlq, res, expired_at)
        if outcome == 'delivered' then
          got = got + 1
          took = took + 1
        elseif outcome == 'dead' then
          -- Dead-lettered: the group moves on to its next message.
          dead = dead + 1
        elseif outcome == 'expired' then
          trimmed = trimmed + 1
        end
      end
    end
    if took > 0 then
      redis.call('ZREM', RG, g)
      redis.call('ZADD', HG, now + vt, g)
      redis.call('HSET', HN, g, took)
    else
      ready(g)
    end
  end
end
local next_visible = nil
local h = redis.call('ZRANGE', HG, '(' .. now, '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
if #h > 0 then next_visible = tonumber(h[2]) end
local r = redis.call('ZRANGE', RG, '(' .. now, '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
if #r > 0 and (not next_visible or tonumber(r[2]) < next_visible) then next_visible = tonumber(r[2]) end
local more = 0
if got == max then more = redis.call('ZCOUNT', RG, '-inf', now) end
return {now, trimmed, dead, next_visible and tostring(next_visible) or '', res, more}
