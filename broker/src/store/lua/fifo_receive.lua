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
local trimmed = trim(now, tonumber(ARGV[6]))
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
      local payload = at and redis.call('HGET', KEYS[1], id)
      if not payload then
        remove(id)
      else
        local rc = redis.call('HINCRBY', KEYS[2], id, 1)
        if max_receives > 0 and rc % EPOCH > max_receives then
          -- Dead-lettered: the group moves on to its next message.
          if dlq ~= '' then redis.call('HSET', KEYS[7], id, 'dlq\n' .. dlq .. '\n' .. payload) end
          remove(id)
          dead = dead + 1
        else
          local sent = redis.call('ZSCORE', KEYS[6], id)
          local first = redis.call('HGET', KEYS[2], FIRST .. id)
          if not first then
            first = now
            redis.call('HSET', KEYS[2], FIRST .. id, now)
          end
          redis.call('ZADD', KEYS[3], now + vt, id)
          redis.call('ZADD', KEYS[4], now + vt, id)
          redis.call('ZREM', KEYS[5], id)
          res[#res + 1] = id
          res[#res + 1] = payload
          res[#res + 1] = rc
          res[#res + 1] = sent
          res[#res + 1] = tostring(first)
          got = got + 1
          took = took + 1
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
