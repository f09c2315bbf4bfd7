-- Stores messages in a queue. KEYS[8] = id sequence; KEYS[9] = incarnation marker;
-- KEYS[10..] = dedup keys.
-- ARGV[2..]: channel, wake key, n, the queue's incarnation as the sending node knows it (its
-- znode's czxid; 0 = unchecked), then per message: payload, delay_ms, dedup key index (0 = none),
-- group ('' = none); last, how long a dedup key lives in seconds.
-- Returns per message: id, 1 when stored now or 0 when a dedup key named an earlier message; or
-- the pair 'MOMGONE', -1 when the incarnation was deleted or replaced (a stale cache).
-- Announces what it stored as `KEY N` (N visible now) or `KEY N D` (and the first delayed one
-- visible in D ms), so each node wakes that many long polls (waiters.rs).
--
-- Fair queues (issue 21): a receive takes visible messages in order of their score in `vis`, and
-- a message is visible as soon as its score is not in the future: the score of a message that
-- is visible at once need not be its send time. So a message of a group is scored with a
-- *virtual* time instead, as in weighted fair queueing: one step after the later of its group's
-- last message and the head (the oldest visible message, or LAG before now when there is none
-- older, so that a burst has room below now). A group with 100,000 messages waiting has them one
-- step apart from the head on; a quiet group's message lands one step after the head, so it is
-- delivered next; two busy groups interleave one to one. Within a group, messages keep their send
-- order. `fg` (zset, group -> its last message's score) remembers only groups with messages past
-- the head; one at or behind it is forgotten (it would start at the head anyway). While `fg`
-- holds a group, messages without one are the group '' (which starts after the messages scored by
-- their send time before), otherwise they are scored by their send time as always: a queue that
-- never sees a group pays one EXISTS per call. Messages that become visible later (delays, nacks,
-- visibility timeouts) are scored by that time, as on any queue.
local FG = string.sub(KEYS[3], 1, -4) .. 'fg'
-- A thousandth of a millisecond: scores are doubles, and at today's epoch in ms their resolution
-- is about a quarter of a microsecond.
local STEP = 0.001
-- How far below now a burst starts when nothing older is visible: a million messages of one
-- group before their scores reach now (from there on they are packed by send time).
local LAG = 1000
if not incarnation_ok(KEYS[9], tonumber(ARGV[5]), {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], FG}) then
  return {'MOMGONE', -1}
end
local now = now_ms()
local n = tonumber(ARGV[4])
local window_s = tonumber(ARGV[6 + n * 4])

-- The head (nil until a grouped message needs it) and whether `fg` holds any group.
local head = nil
-- Whether this call staged a message scored `now` (common.lua `stage`).
local staged_now = false
local fair = redis.call('EXISTS', FG) == 1
-- The score of a message of group g ('' = none) visible now.
local function score(g)
  if g == '' and not fair then return now end
  if not head then
    head = now - LAG
    local h = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    if #h > 0 and tonumber(h[2]) < head then head = tonumber(h[2]) end
    redis.call('ZREMRANGEBYSCORE', FG, '-inf', head)
    fair = redis.call('EXISTS', FG) == 1
  end
  if not fair then
    if g == '' then return now end
    -- The first group: messages without one scored by their send time come before those without
    -- one from here on (the '' group starts at the latest visible score).
    -- (Messages this call staged at `now` are not in `vis` yet: they are the latest.)
    local t = redis.call('ZRANGE', KEYS[3], now, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')
    local latest = staged_now and now or (#t > 0 and tonumber(t[2])) or nil
    if latest and latest > head then redis.call('ZADD', FG, latest, '') end
    fair = true
  end
  local last = tonumber(redis.call('ZSCORE', FG, g) or head)
  local s = math.min(math.max(last, head) + STEP, now)
  redis.call('ZADD', FG, s, g)
  return s
end

local out = {}
local stored = false
local visible, first_delay = 0, nil
for i = 0, n - 1 do
  local payload = ARGV[6 + i * 4]
  local delay = tonumber(ARGV[7 + i * 4])
  local dk = tonumber(ARGV[8 + i * 4])
  local g = ARGV[9 + i * 4]
  stored = store_once(out, KEYS[8], dk, window_s, n - i, function(id)
    if delay > 0 then
      stage(id, payload, now, now + delay, true)
      first_delay = math.min(first_delay or delay, delay)
    else
      local s = score(g)
      if s == now then staged_now = true end
      stage(id, payload, now, s, false)
      visible = visible + 1
    end
  end) or stored
end
store_staged()
keep_dedup(window_s)
if stored then
  local note = ARGV[3] .. ' ' .. visible
  if first_delay then note = note .. ' ' .. first_delay end
  redis.call('PUBLISH', ARGV[2], note)
end
return out
