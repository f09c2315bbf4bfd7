-- FIFO queues (issue 21): message groups, in the queue's hash slot beside the mailbox keys of
-- common.lua, which keep their meaning (vis, inf, del, sent, rc: stats, trimming, redrive and
-- peeking work unchanged). The group keys' names derive from KEYS[3] (`...:vis`), so the scripts
-- of standard queues keep their KEYS and their cost:
--   gm  hash  id -> its group
--   go  zset  score 0, members GROUP .. '\n' .. id: each group's messages in id (= send) order,
--             read by lexicographic range (ids are fixed-width decimals; groups hold no control
--             characters)
--   rg  zset  group -> visible-at of its head: groups with messages and nothing in flight
--             ("ready"); a receive takes from those whose head is visible
--   hg  zset  group -> deadline of its hold: groups with messages in flight (held)
--   hn  hash  group -> how many deliveries the hold covers
-- Invariants: a group with messages is in exactly one of rg and hg; a held group delivers
-- nothing; a group is released (back to rg) when the last delivery of its hold is settled or the
-- hold's deadline passed (the latest deadline among its deliveries).
local FB = string.sub(KEYS[3], 1, -4)
local GM, GO, RG, HG, HN = FB .. 'gm', FB .. 'go', FB .. 'rg', FB .. 'hg', FB .. 'hn'
local FIFO_KEYS = {GM, GO, RG, HG, HN}

-- The first `n` ids of group g, in order.
local function group_ids(g, n)
  local members = redis.call('ZRANGE', GO, '[' .. g .. '\n', '(' .. g .. '\v', 'BYLEX', 'LIMIT', 0, n)
  local ids = {}
  for i, m in ipairs(members) do ids[i] = string.sub(m, #g + 2) end
  return ids
end

local function held(g)
  return redis.call('ZSCORE', HG, g)
end

-- Readies group g (not held): scored by its head's visible-at, or dropped when empty. A head
-- without a visible-at (removed by a script that did not know the group) is forgotten.
local function ready(g)
  for _ = 1, 100 do
    local head = group_ids(g, 1)[1]
    if not head then
      redis.call('ZREM', RG, g)
      return
    end
    local at = redis.call('ZSCORE', KEYS[3], head)
    if at then
      redis.call('ZADD', RG, at, g)
      return
    end
    redis.call('HDEL', GM, head)
    redis.call('ZREM', GO, g .. '\n' .. head)
  end
end

local function release(g)
  redis.call('ZREM', HG, g)
  redis.call('HDEL', HN, g)
  ready(g)
end

-- Releases the groups whose hold ended (every delivery of it timed out).
local function release_expired(now)
  local gs = redis.call('ZRANGE', HG, '-inf', now, 'BYSCORE', 'LIMIT', 0, 1000)
  for _, g in ipairs(gs) do release(g) end
end

-- Whether the delivery of `id` counts in its group's hold: in flight with its deadline ahead.
-- Only those release the group when settled; a timed-out one was released with its hold.
local function counted(id, now)
  local d = redis.call('ZSCORE', KEYS[4], id)
  return d and tonumber(d) > now
end

-- One counted delivery of group g ended: the last one releases the group.
local function unhold(g)
  if not held(g) then return end
  if redis.call('HINCRBY', HN, g, -1) <= 0 then release(g) end
end

on_remove = function(id)
  local g = redis.call('HGET', GM, id)
  if not g then return end
  redis.call('HDEL', GM, id)
  redis.call('ZREM', GO, g .. '\n' .. id)
  if not held(g) then ready(g) end
end

fifo_stats = function(now)
  return redis.call('ZCOUNT', HG, '(' .. now, '+inf')
end
