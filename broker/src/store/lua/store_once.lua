-- Stores one message unless its dedup key (KEYS[dk], when dk > 0) names an earlier one; `put(id)`
-- writes the message under its new id. Appends {id, 1 stored now | 0 earlier} to `out` and
-- returns whether it stored. A dedup key lives `window_s` seconds (MOM_DEDUP_WINDOW_S, 300 by default).
local function store_once(out, seq_key, dk, window_s, put)
  local earlier = dk > 0 and redis.call('GET', KEYS[dk])
  if earlier then
    out[#out + 1] = earlier
    out[#out + 1] = 0
    return false
  end
  local id = string.format('%016d', redis.call('INCR', seq_key))
  put(id)
  if dk > 0 then redis.call('SET', KEYS[dk], id, 'EX', window_s) end
  out[#out + 1] = id
  out[#out + 1] = 1
  return true
end
