-- Ack, nack or visibility change of deliveries named by receipts.
-- ARGV[2..]: channel, wake key, mode ('ack' | 'nack' | 'vis'), ms (nack delay or new visibility
-- timeout), when push streams may wait for room ('1' always, '2' while one marked the mailbox:
-- `room_wanted` in common.lua), then pairs of id, delivery number. Returns 1 (done) or 0 (stale or unknown
-- receipt) per pair.
-- Announces (waiters.rs) messages visible again now as `KEY N`, a nack with a delay as `KEY 0 D`
-- (visible in D ms), and, for streams, in-flight slots freed as `KEY room ID...` (the ids whose
-- delivery ended, so a stream knows which of its own did without asking: waiters.rs `Room`).
local mode = ARGV[4]
local ms = tonumber(ARGV[5])
-- An ack needs no clock (and every call counts: common.lua, `deliver`).
local now = mode ~= 'ack' and now_ms()
local out = {}
local done = 0
local ended = {}
for i = 7, #ARGV, 2 do
  local id = ARGV[i]
  local ok
  if mode == 'ack' then
    ok = end_delivery(id, ARGV[i + 1])
    if ok then remove(id, true) end
  elseif mode == 'nack' then
    ok = end_delivery(id, ARGV[i + 1])
    if ok then
      redis.call('ZADD', KEYS[3], now + ms, id)
      if ms > 0 then redis.call('ZADD', KEYS[5], now + ms, id) end
    end
  else
    ok = current_delivery(id, ARGV[i + 1])
    if ok then
      redis.call('ZADD', KEYS[3], now + ms, id)
      redis.call('ZADD', KEYS[4], now + ms, id)
    end
  end
  if ok then
    done = done + 1
    ended[done] = id
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if done > 0 then
  local lines = {}
  local key = ARGV[3]
  if mode == 'nack' and ms > 0 then
    lines[#lines + 1] = key .. ' 0 ' .. ms
  elseif mode == 'nack' or (mode == 'vis' and ms == 0) then
    lines[#lines + 1] = key .. ' ' .. done
  end
  if (mode ~= 'vis' or ms == 0) and room_wanted() then
    lines[#lines + 1] = key .. ' room ' .. table.concat(ended, ' ')
  end
  if #lines > 0 then redis.call('PUBLISH', ARGV[2], table.concat(lines, '\n')) end
end
return out
