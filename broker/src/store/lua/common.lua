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

-- Removes message `id` from every key. `acked`: an ack, which has taken it out of `inf` itself
-- (`end_delivery`) and leaves its `del` entry: a message in flight is past any delay, and a `del`
-- entry whose due time is past means nothing (stats and peek count only those ahead); `trim`
-- drops those in bulk. One call fewer per ack, and every call counts (see `deliver`).
local function remove(id, acked)
  if on_remove then on_remove(id) end
  if OWNS then redis.call('HDEL', KEYS[1], id) end
  redis.call('HDEL', KEYS[2], id, FIRST .. id)
  redis.call('ZREM', KEYS[3], id)
  if not acked then
    redis.call('ZREM', KEYS[4], id)
    redis.call('ZREM', KEYS[5], id)
  end
  redis.call('ZREM', KEYS[6], id)
end

-- Drops messages older than the retention period, and `del` entries whose due time has passed
-- (left by acks, see `remove`); returns how many messages. Stats trims on every call; a receive
-- only on one millisecond in 8 (`trim_sometimes`): `deliver` never hands out an expired message,
-- so trimming there only frees memory, and costs a call every time.
local function trim(now, retention_ms)
  local ids = redis.call('ZRANGE', KEYS[6], '-inf', now - retention_ms, 'BYSCORE', 'LIMIT', 0, 1000)
  for _, id in ipairs(ids) do remove(id) end
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  return #ids
end

local function trim_sometimes(now, retention_ms)
  if now % 8 ~= 0 then return 0 end
  return trim(now, retention_ms)
end

-- Delivers message `id` once more (in flight until now + vt) and appends it to `res` as
-- {id, payload, delivery number, sent_at, first received at}; past `max_receives` moves it to the
-- dead-letter queue `dlq` through the outbox instead (or drops it, dlq ''). A message sent at
-- `expired_at` or before is past its retention: it is removed, not delivered (so a receive needs
-- no trim of its own first). Returns 'delivered', 'dead', 'expired', or 'gone' (its payload had
-- gone: the rest is removed too).
-- Every Redis call here is paid once per delivery (about 1.5 µs each beyond the command itself,
-- BENCHMARKS.md), so it makes no call it can do without: a delayed message's `del` entry stays
-- (its score is past; stats and peek read `del` from now on, and `trim` drops it).
local function deliver(id, now, vt, max_receives, dlq, res, expired_at)
  local sent = redis.call('ZSCORE', KEYS[6], id)
  if sent and tonumber(sent) <= expired_at then
    remove(id)
    return 'expired'
  end
  local payload = redis.call('HGET', KEYS[1], id)
  if not payload or not sent then
    remove(id)
    return 'gone'
  end
  local rc = redis.call('HINCRBY', KEYS[2], id, 1)
  if max_receives > 0 and rc % EPOCH > max_receives then
    if dlq ~= '' then redis.call('HSET', KEYS[7], id, 'dlq\n' .. dlq .. '\n' .. payload) end
    remove(id)
    return 'dead'
  end
  -- When it was first received (SQS ApproximateFirstReceiveTimestamp), beside its count: set by
  -- the first delivery (of its epoch), read by the later ones.
  local first = now
  if rc % EPOCH == 1 then
    redis.call('HSET', KEYS[2], FIRST .. id, now)
  else
    first = redis.call('HGET', KEYS[2], FIRST .. id) or now
  end
  redis.call('ZADD', KEYS[3], now + vt, id)
  redis.call('ZADD', KEYS[4], now + vt, id)
  res[#res + 1] = id
  res[#res + 1] = payload
  res[#res + 1] = rc
  res[#res + 1] = sent
  res[#res + 1] = tostring(first)
  return 'delivered'
end

-- Whether a settle should announce `KEY room` to push streams waiting for room (settle.lua,
-- fifo_settle.lua): ARGV[6] '1' always (subscriptions), '2' while a stream marked the mailbox
-- (queues: the `st` key beside `vis`, store/mailbox.rs `mark_streaming`), else never.
local function room_wanted()
  if ARGV[6] == '1' then return true end
  return ARGV[6] == '2' and redis.call('EXISTS', string.sub(KEYS[3], 1, -4) .. 'st') == 1
end

-- True when `id` is in flight under the delivery `rc` (the receipt's delivery is the current one).
local function current_delivery(id, rc)
  return redis.call('HGET', KEYS[2], id) == rc and redis.call('ZSCORE', KEYS[4], id)
end

-- The same, taking the delivery out of flight when it is (one call for both: `ZREM` answers
-- whether it was there). For an ack and a nack, which end the delivery.
local function end_delivery(id, rc)
  return redis.call('HGET', KEYS[2], id) == rc and redis.call('ZREM', KEYS[4], id) == 1
end
