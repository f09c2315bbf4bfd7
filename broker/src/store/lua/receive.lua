-- Delivers up to `max` visible messages in order of visibility time, then id (FIFO of first delivery).
-- ARGV[2..]: max, visibility_ms, max_receives (0 = unlimited), dead-letter queue ('' = discard), retention_ms.
-- A message that would be delivered a max_receives+1-th time goes to the outbox (or is dropped).
-- Returns {now, trimmed, dead, next_visible_ms or '', {id, payload, delivery number, sent_at,
-- first received at, ...}, more}: next_visible_ms is the earliest visible-at still ahead (a delay, or a visibility deadline
-- including those just set); `more` counts messages still visible after what it took, so a long
-- poll that took some can wake others for the rest (waiters.rs).
local now = now_ms()
local max = tonumber(ARGV[2])
local vt = tonumber(ARGV[3])
local max_receives = tonumber(ARGV[4])
local dlq = ARGV[5]
local expired_at = now - tonumber(ARGV[6])
local trimmed = trim_sometimes(now, tonumber(ARGV[6]))
local res = {}
local got, dead, nseen = 0, 0, 0
local seen = {}
-- Bounds the work of one call however many dead letters or expired messages it meets.
local budget = max * 4 + 100
local swept = false
-- Whether the last look may have left visible messages behind: each look asks for one more than
-- it needs, and a look that came back short saw them all. Only then is counting the rest (`more`)
-- worth a call: a consumer that takes the one message there is pays none.
local beyond = false
while got < max and budget > 0 do
  local want = max - got + nseen + 1
  local ids = redis.call('ZRANGE', KEYS[3], '-inf', now, 'BYSCORE', 'LIMIT', 0, want)
  beyond = #ids == want
  -- The ones not seen yet, as many as could be delivered: delivered together (common.lua).
  local take = {}
  for _, id in ipairs(ids) do
    if not seen[id] and got + #take < max and #take < budget then
      seen[id] = true
      take[#take + 1] = id
    end
  end
  if #take == 0 then break end
  nseen = nseen + #take
  budget = budget - #take
  local n = deliver_all(take, now, vt, max_receives, dlq, res, expired_at)
  got = got + n.delivered
  dead = dead + n.dead
  trimmed = trimmed + n.expired
  -- Where one expired, more may have: drop them in bulk, once per call.
  if n.expired > 0 and not swept then
    swept = true
    trimmed = trimmed + trim(now, tonumber(ARGV[6]))
  end
end
local next_visible = ''
local n = redis.call('ZRANGE', KEYS[3], '(' .. now, '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
if #n > 0 then next_visible = n[2] end
-- Short of max with budget left, the loop above saw every visible message: none is left.
local more = 0
if budget <= 0 or (got == max and beyond) then more = redis.call('ZCOUNT', KEYS[3], '-inf', now) end
return {now, trimmed, dead, next_visible, res, more}
