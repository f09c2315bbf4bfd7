-- Delivers up to `max` visible messages in order of visibility time, then id (FIFO of first delivery).
-- ARGV[2..]: max, visibility_ms, max_receives (0 = unlimited), dead-letter queue ('' = discard), retention_ms.
-- A message that would be delivered a max_receives+1-th time goes to the outbox (or is dropped).
-- Returns {now, trimmed, dead, next_visible_ms or '', {id, payload, delivery number, sent_at,
-- first received at, ...}, more}: next_visible_ms is the earliest visible-at still ahead (a delay,
-- or a visibility deadline including those just set), '' when none or when `more` > 0; `more`
-- counts messages still visible after what it took, so a long poll that took some can wake others
-- for the rest (waiters.rs).
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
-- The earliest visible-at still ahead, when a look reached past the visible messages: `vis` is in
-- order of that time, so a look by rank that came back short of visible ones ends with it (or
-- the set ends). Nothing changes it during the call but this call's deliveries (now + vt), so
-- the first one seen stays right.
local ahead = nil
while got < max and budget > 0 do
  local want = max - got + nseen + 1
  -- By rank, with scores: the visible ones, and the first one ahead if the look reaches it.
  local look = redis.call('ZRANGE', KEYS[3], 0, want - 1, 'WITHSCORES')
  local ids = {}
  for i = 1, #look, 2 do
    if tonumber(look[i + 1]) > now then
      ahead = ahead or look[i + 1]
      break
    end
    ids[#ids + 1] = look[i]
  end
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
-- Short of max with budget left, the loop above saw every visible message: none is left.
local more = 0
if budget <= 0 or (got == max and beyond) then more = redis.call('ZCOUNT', KEYS[3], '-inf', now) end
-- The next visible instant, for the waiters' timers (waiters.rs): the first one a look reached
-- past the visible messages, or this call's own deadline (now + vt) if earlier.
local next_visible = ahead and tonumber(ahead) or nil
if not ahead and more > 0 then
  -- It left visible messages behind and no look reached further: it need not know. It reports
  -- `more`, whose wakes make receives that will.
elseif not ahead and beyond then
  -- The last look was full and nothing is left visible (the budget ran out): look once more.
  local n = redis.call('ZRANGE', KEYS[3], '(' .. now, '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
  if #n > 0 then next_visible = tonumber(n[2]) end
elseif got > 0 and vt > 0 and (not next_visible or now + vt < next_visible) then
  -- Otherwise a look that came back short ended with the set, or with `ahead`.
  next_visible = now + vt
end
return {now, trimmed, dead, next_visible and string.format('%d', next_visible) or '', res, more}
