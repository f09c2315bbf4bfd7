-- Stores one message unless its dedup key (KEYS[dk], when dk > 0) names an earlier one; `put(id)`
-- writes the message under its new id. Appends {id, 1 stored now | 0 earlier} to `out` and
-- returns whether it stored. A dedup key lives `window_s` seconds (MOM_DEDUP_WINDOW_S, 300 by default).
-- `left`: messages the call has still to store, this one included. Ids come from the sequence
-- `seq_key` a call's worth at a time (one INCRBY, not one INCR per message: every Redis call in a
-- script counts, common.lua `deliver`), in order; those of messages a dedup key turned away are
-- left unused (ids are unique and increasing, never dense).
local ids_next, ids_last = 1, 0
local function store_once(out, seq_key, dk, window_s, left, put)
  local earlier = dk > 0 and redis.call('GET', KEYS[dk])
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
  if dk > 0 then redis.call('SET', KEYS[dk], id, 'EX', window_s) end
  out[#out + 1] = id
  out[#out + 1] = 1
  return true
end
