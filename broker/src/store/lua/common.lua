-- Shared prelude of every mailbox script (prepended by store/mailbox.rs). A mailbox is what
-- consumers receive from: a queue, or one subscription of a topic.
-- KEYS[1..7] are the mailbox's keys, all in one hash slot:
--   1 m    hash  id -> payload (for a subscription: the topic's shared payloads, read-only here)
--   2 rc   hash  id -> delivery number: epoch * EPOCH + receive count (field '#epoch': the epoch;
--              field '^ID': when message ID was first received, in ms)
--   3 vis  zset  id -> time (ms) the message is visible from; every live message is here
--   4 inf  zset  id -> visibility deadline of the current delivery (in flight while in the future)
--   5 del  zset  id -> due time of a delayed message (delayed while in the future)
--   6 sent zset  id -> sent_at (ms); also orders retention trimming
--   7 out  hash  id -> "kind\ntarget\npayload": messages on their way to another queue
-- ARGV[1] is '1' when the mailbox owns its payloads (a queue) and '0' when they are shared.
local OWNS = ARGV[1] == '1'
-- A seek starts a new epoch, so receipts of deliveries before it can never match again.
local EPOCH = 1048576
-- The rc field of a message's first receive time: FIRST .. id.
local FIRST = '^'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Set by fifo.lua on FIFO queues: keeps a queue's groups in step when a message goes (nil on
-- standard mailboxes, which pay one nil check for it).
local on_remove = nil
-- Set by fifo.lua on FIFO queues: what stats.lua adds (groups with messages in flight).
local fifo_stats = nil

-- Removes messages `ids` from every key, one call per key for all of them (many.lua). `acked`:
-- acks, which have taken them out of `inf` themselves (`end_deliveries`) and leave their `del`
-- entries: a message in flight is past any delay, and a `del` entry whose due time is past means
-- nothing (stats and peek count only those ahead); `trim` drops those in bulk.
local function remove_all(ids, acked)
  if #ids == 0 then return end
  if on_remove then
    for _, id in ipairs(ids) do on_remove(id) end
  end
  if OWNS then many('HDEL', KEYS[1], ids) end
  local fields = {}
  for _, id in ipairs(ids) do
    fields[#fields + 1] = id
    fields[#fields + 1] = FIRST .. id
  end
  many('HDEL', KEYS[2], fields)
  many('ZREM', KEYS[3], ids)
  if not acked then
    many('ZREM', KEYS[4], ids)
    many('ZREM', KEYS[5], ids)
  end
  many('ZREM', KEYS[6], ids)
end

local function remove(id, acked)
  remove_all({ id }, acked)
end

-- A send's writes (send.lua, fifo_send.lua): staged per message by `stage`, made for all of them
-- at once by `store_staged` (many.lua). A message sent at `now`, visible from `visible_at`
-- (`delayed`: a due time ahead, also kept in `del`).
-- `now` goes to Redis as a string formatted once (Redis 7.0 formats a Lua number argument with
-- `%.17g`, a measurable cost per message); other scores (fair queues' virtual times, with
-- fractions) as numbers.
local staged = { m = {}, sent = {}, vis = {}, del = {} }
local function stage(id, payload, now, visible_at, delayed)
  local m, sent, vis = staged.m, staged.sent, staged.vis
  if staged.now ~= now then
    staged.now, staged.now_s = now, string.format('%d', now)
  end
  m[#m + 1] = id
  m[#m + 1] = payload
  sent[#sent + 1] = staged.now_s
  sent[#sent + 1] = id
  vis[#vis + 1] = visible_at == now and staged.now_s or visible_at
  vis[#vis + 1] = id
  if delayed then
    staged.del[#staged.del + 1] = visible_at
    staged.del[#staged.del + 1] = id
  end
end

local function store_staged()
  many('HSET', KEYS[1], staged.m)
  many('ZADD', KEYS[6], staged.sent)
  many('ZADD', KEYS[3], staged.vis)
  many('ZADD', KEYS[5], staged.del)
end

-- Drops messages older than the retention period, and `del` entries whose due time has passed
-- (left by acks, see `remove_all`); returns how many messages. Stats trims on every call; a
-- receive only on one millisecond in 8 (`trim_sometimes`): `deliver_all` never hands out an
-- expired message, so trimming there only frees memory, and costs calls every time.
local function trim(now, retention_ms)
  local ids = redis.call('ZRANGE', KEYS[6], '-inf', now - retention_ms, 'BYSCORE', 'LIMIT', 0, 1000)
  remove_all(ids)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  return #ids
end

local function trim_sometimes(now, retention_ms)
  if now % 8 ~= 0 then return 0 end
  return trim(now, retention_ms)
end

-- Delivers messages `ids` (distinct, visible now) once more each (in flight until now + vt),
-- appending each delivered one to `res` as {id, payload, delivery number, sent_at, first received
-- at}; past `max_receives` one moves to the dead-letter queue `dlq` through the outbox instead (or
-- is dropped, dlq ''). One sent at `expired_at` or before is past its retention: it is removed,
-- not delivered (so a receive needs no trim of its own first); one whose payload has gone is
-- removed too. Returns the counts {delivered, dead, expired} (the rest had gone).
-- Every Redis call here is paid once per call, not per delivery (many.lua): the delivery counts
-- and first receive times are read together (HMGET) and written together (HSET), which a
-- script may do because nothing else runs between the two. Numbers go to Redis as strings
-- formatted here: Redis 7.0 formats a Lua number argument with `%.17g`, a measurable cost. A
-- delayed message's `del` entry stays (its score is past; stats and peek read `del` from now on,
-- and `trim` drops it).
local function deliver_all(ids, now, vt, max_receives, dlq, res, expired_at)
  local n = { delivered = 0, dead = 0, expired = 0 }
  if #ids == 0 then return n end
  local sents = many('ZMSCORE', KEYS[6], ids)
  local payloads = many('HMGET', KEYS[1], ids)
  local gone, live, fields = {}, {}, {}
  for i, id in ipairs(ids) do
    local sent, payload = sents[i], payloads[i]
    if sent and tonumber(sent) <= expired_at then
      gone[#gone + 1] = id
      n.expired = n.expired + 1
    elseif not payload or not sent then
      gone[#gone + 1] = id
    else
      live[#live + 1] = i
      fields[#fields + 1] = id
      fields[#fields + 1] = FIRST .. id
    end
  end
  local had = many('HMGET', KEYS[2], fields)
  local now_s = string.format('%d', now)
  local until_s = string.format('%d', now + vt)
  local counts, until_, dead = {}, {}, {}
  for j, i in ipairs(live) do
    local id = ids[i]
    local rc = (tonumber(had[2 * j - 1]) or 0) + 1
    if max_receives > 0 and rc % EPOCH > max_receives then
      if dlq ~= '' then
        dead[#dead + 1] = id
        dead[#dead + 1] = 'dlq\n' .. dlq .. '\n' .. payloads[i]
      end
      gone[#gone + 1] = id
      n.dead = n.dead + 1
    else
      counts[#counts + 1] = id
      counts[#counts + 1] = string.format('%d', rc)
      -- When it was first received (SQS ApproximateFirstReceiveTimestamp), beside its count:
      -- set by the first delivery (of its epoch), read by the later ones.
      local first = had[2 * j]
      if rc % EPOCH == 1 then
        first = now_s
        counts[#counts + 1] = FIRST .. id
        counts[#counts + 1] = now_s
      end
      until_[#until_ + 1] = until_s
      until_[#until_ + 1] = id
      res[#res + 1] = id
      res[#res + 1] = payloads[i]
      res[#res + 1] = rc
      res[#res + 1] = sents[i]
      res[#res + 1] = first or now_s
      n.delivered = n.delivered + 1
    end
  end
  many('HSET', KEYS[7], dead)
  remove_all(gone)
  many('HSET', KEYS[2], counts)
  many('ZADD', KEYS[3], until_)
  many('ZADD', KEYS[4], until_)
  return n
end

-- `deliver_all` of one message; returns 'delivered', 'dead', 'expired', or 'gone'.
local function deliver(id, now, vt, max_receives, dlq, res, expired_at)
  local n = deliver_all({ id }, now, vt, max_receives, dlq, res, expired_at)
  if n.delivered > 0 then return 'delivered' end
  if n.dead > 0 then return 'dead' end
  if n.expired > 0 then return 'expired' end
  return 'gone'
end

-- Whether a settle should announce `KEY room` to push streams waiting for room (settle.lua,
-- fifo_settle.lua): ARGV[6] '1' always (subscriptions), '2' while a stream marked the mailbox
-- (queues: the `st` key beside `vis`, store/mailbox.rs `mark_streaming`), else never.
local function room_wanted()
  if ARGV[6] == '1' then return true end
  return ARGV[6] == '2' and redis.call('EXISTS', string.sub(KEYS[3], 1, -4) .. 'st') == 1
end

-- The receipts of a settle or a check: ARGV from `first` on, pairs of id and delivery number.
-- Returns the ids and the delivery numbers as two lists.
local function receipts(first)
  local ids, rcs = {}, {}
  for i = first, #ARGV, 2 do
    ids[#ids + 1] = ARGV[i]
    rcs[#rcs + 1] = ARGV[i + 1]
  end
  return ids, rcs
end

-- Which of the deliveries named by `ids` and their delivery numbers `rcs` are current (the
-- receipt's delivery is the message's latest and still in flight); `take`: an ack or a nack, which
-- ends them (out of `inf`) and so counts an id named twice once; `after` (a time, or nil): only
-- those whose deadline is later. Returns a list of booleans. One call per key for all of them
-- (many.lua), except that taking one or two makes one `ZREM` each: it answers whether the
-- delivery was there, which a check and a removal for many (`ZMSCORE`, `ZREM`) take two calls for.
local function current_deliveries(ids, rcs, take, after)
  local have = many('HMGET', KEYS[2], ids)
  local ok, named, seen = {}, {}, {}
  for i, id in ipairs(ids) do
    ok[i] = false
    if have[i] == rcs[i] and not (take and seen[id]) then
      seen[id] = true
      named[#named + 1] = i
    end
  end
  if take and #named <= 2 then
    for _, i in ipairs(named) do ok[i] = redis.call('ZREM', KEYS[4], ids[i]) == 1 end
    return ok
  end
  local check = {}
  for j, i in ipairs(named) do check[j] = ids[i] end
  local at = many('ZMSCORE', KEYS[4], check)
  local taken = {}
  for j, i in ipairs(named) do
    if at[j] and (not after or tonumber(at[j]) > after) then
      ok[i] = true
      taken[#taken + 1] = ids[i]
    end
  end
  if take then many('ZREM', KEYS[4], taken) end
  return ok
end

-- True when `id` is in flight under the delivery `rc` (the receipt's delivery is the current one).
local function current_delivery(id, rc)
  return current_deliveries({ id }, { rc }, false)[1]
end
