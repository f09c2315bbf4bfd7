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
-- An ack needs no clock (and every call counts: many.lua).
local now = mode ~= 'ack' and now_ms()
local ids, rcs = receipts(7)
-- All of them at once: one call per key, not per receipt (common.lua).
local ok = current_deliveries(ids, rcs, mode ~= 'vis')
local out = {}
local done = 0
local ended = {}
local at = {}
for i, id in ipairs(ids) do
  if ok[i] then
    done = done + 1
    ended[done] = id
    if now then
      at[#at + 1] = now + ms
      at[#at + 1] = id
    end
    out[i] = 1
  else
    out[i] = 0
  end
end
if mode == 'ack' then
  remove_all(ended, true)
elseif mode == 'nack' then
  many('ZADD', KEYS[3], at)
  if ms > 0 then many('ZADD', KEYS[5], at) end
else
  many('ZADD', KEYS[3], at)
  many('ZADD', KEYS[4], at)
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
