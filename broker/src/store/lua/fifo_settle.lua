-- Ack, nack or visibility change on a FIFO queue: settle.lua's ARGV and answer, plus the groups
-- (fifo.lua): the last counted delivery of a hold settled releases its group. A visibility change
-- applies only to a delivery still counted in its group's hold (not timed out): extending a
-- timed-out one would put a message in flight beside a later delivery of its group.
-- Announces the messages made receivable: released groups' heads, and what a nack returned.
local now = now_ms()
release_expired(now)
local mode = ARGV[4]
local ms = tonumber(ARGV[5])
local out = {}
local freed, later = 0, nil
local settled = 0
local function readied(g)
  local s = redis.call('ZSCORE', RG, g)
  if not s then return end
  if tonumber(s) <= now then
    freed = freed + 1
  else
    later = math.min(later or (tonumber(s) - now), tonumber(s) - now)
  end
end
for i = 7, #ARGV, 2 do
  local id = ARGV[i]
  local ok = false
  if current_delivery(id, ARGV[i + 1]) then
    local g = redis.call('HGET', GM, id)
    local c = counted(id, now)
    if mode == 'ack' then
      remove(id)
      if g and c then unhold(g) end
      ok = true
    elseif mode == 'nack' then
      redis.call('ZADD', KEYS[3], now + ms, id)
      redis.call('ZREM', KEYS[4], id)
      if ms > 0 then redis.call('ZADD', KEYS[5], now + ms, id) end
      if g and c then
        unhold(g)
      elseif g and not held(g) then
        ready(g)
      end
      ok = true
    elseif c then
      redis.call('ZADD', KEYS[3], now + ms, id)
      redis.call('ZADD', KEYS[4], now + ms, id)
      if g and ms == 0 then
        unhold(g)
      elseif g then
        if tonumber(redis.call('HGET', HN, g) or '0') <= 1 then
          redis.call('ZADD', HG, now + ms, g)
        else
          redis.call('ZADD', HG, 'GT', now + ms, g)
        end
      end
      ok = true
    end
    if ok and g then readied(g) end
  end
  if ok then settled = settled + 1 end
  out[#out + 1] = ok and 1 or 0
end
local lines = {}
if freed > 0 then lines[#lines + 1] = ARGV[3] .. ' ' .. freed end
if later then lines[#lines + 1] = ARGV[3] .. ' 0 ' .. later end
-- Push streams waiting for room under their bound re-check (as settle.lua).
if settled > 0 and (mode ~= 'vis' or ms == 0) and room_wanted() then lines[#lines + 1] = ARGV[3] .. ' room' end
if #lines > 0 then redis.call('PUBLISH', ARGV[2], table.concat(lines, '\n')) end
return out
