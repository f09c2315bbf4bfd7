-- Registers a subscription and fills it from the retained log, or (seek) refills it.
-- KEYS[4..10] the subscription's mailbox keys (m unused, rc, vis, inf, del, sent, out).
-- ARGV: name, registry JSON, start ('latest' | 'time' | 'id'), start value (ms or id),
-- '1' to reset first (seek: cancels deliveries in flight and starts a new epoch), channel, wake key.
-- Returns how many messages it put in.
local now = now_ms()
local name, spec_json, mode, from, reset = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
local rc, vis, inf, del, sent = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
redis.call('HSET', KEYS[3], name, spec_json)
local spec = cjson.decode(spec_json)
local epoch = tonumber(redis.call('HGET', rc, '#epoch')) or 0
if reset then
  epoch = epoch + 1
  redis.call('DEL', rc, vis, inf, del, sent)
  redis.call('HSET', rc, '#epoch', epoch)
end
local added = 0
if mode ~= 'latest' then
  local entries
  if mode == 'time' then
    entries = redis.call('ZRANGE', KEYS[2], from, '+inf', 'BYSCORE', 'WITHSCORES')
  else
    entries = redis.call('ZRANGE', KEYS[2], '-inf', '+inf', 'BYSCORE', 'WITHSCORES')
  end
  for i = 1, #entries, 2 do
    local id, ts = entries[i], entries[i + 1]
    if mode ~= 'id' or id >= from then
      local payload = redis.call('HGET', KEYS[1], id)
      if payload then
        local p = cjson.decode(payload)
        local attrs = p.a
        if type(attrs) ~= 'table' then attrs = {} end
        if matches(spec, attrs, p.p) then
          redis.call('ZADD', sent, ts, id)
          redis.call('ZADD', vis, now, id)
          if epoch > 0 then redis.call('HSET', rc, id, epoch * EPOCH) end
          added = added + 1
        end
      end
    end
  end
end
if added > 0 or reset then redis.call('PUBLISH', ARGV[6], ARGV[7]) end
return added
