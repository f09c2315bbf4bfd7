-- Stores one message unless its dedup key (KEYS[dk], when dk > 0) names an earlier one; `put(id)`
-- writes the message under its new id. Appends {id, 1 stored now | 0 earlier} to `out` and
-- returns whether it stored. A dedup key lives `window_s` seconds (MOM_DEDUP_WINDOW_S, 300 by default).
-- `left`: messages the call has still to store, this one included. Ids come from the sequence
-- `seq_key` a call's worth at a time (one INCRBY, not one INCR per message: every Redis call in a
-- script counts, many.lua), in order; those of messages a dedup key turned away are
-- left unused (ids are unique and increasing, never dense).
-- `put` may only stage its writes, to make them for every message at once (many.lua): a call
-- sets the dedup keys it claimed with `keep_dedup`, after the messages are written, so that a key
-- never names a message that is not there.
local ids_next, ids_last = 1, 0
local claimed, claims = {}, {}
local function store_once(out, seq_key, dk, window_s, left, put)
  local earlier = dk > 0 and (claimed[KEYS[dk]] or redis.call('GET', KEYS[dk]))
  if earlier then
    out[#out + 1] = earlier
    out[#out + 1] = 0
    return false
  end
  if ids_next > ids_last then
    ids_last = redis.call('INCRBY', seq_key, left)
    ids_next = ids_last - left + 1
  end
  local id = string.format('%016d', ids_next)
  ids_next = ids_next + 1
  put(id)
  if dk > 0 then
    -- By name: two messages of one call may name one key under two indexes (group commit).
    claimed[KEYS[dk]] = id
    claims[#claims + 1] = KEYS[dk]
  end
  out[#out + 1] = id
  out[#out + 1] = 1
  return true
end

-- Sets the dedup keys of the messages this call stored (see above).
local function keep_dedup(window_s)
  for _, key in ipairs(claims) do redis.call('SET', key, claimed[key], 'EX', window_s) end
end
