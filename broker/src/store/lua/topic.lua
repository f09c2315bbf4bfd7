-- Shared prelude of topic scripts (prepended by store/topic.rs).
-- KEYS[1] payloads hash (id -> payload JSON {"b","a","p"}), KEYS[2] log zset (id -> published ms),
-- KEYS[3] registry hash (subscription -> JSON {"filter","owner","no_local"}).
-- Subscription keys are named `<subscription prefix><name>:<key>` and live in the topic's slot.
local EPOCH = 1048576

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Does a message with these attributes, from this publisher, go to this subscription?
local function matches(spec, attrs, publisher)
  if spec.no_local and spec.owner == publisher then return false end
  if type(spec.filter) == 'table' then
    for k, v in pairs(spec.filter) do
      if attrs[k] ~= v then return false end
    end
  end
  return true
end

-- Drops log entries older than the retention period; returns how many.
local function trim_log(now, retention_ms)
  local ids = redis.call('ZRANGE', KEYS[2], '-inf', now - retention_ms, 'BYSCORE', 'LIMIT', 0, 1000)
  many('HDEL', KEYS[1], ids)
  many('ZREM', KEYS[2], ids)
  return #ids
end
