-- The incarnation check of queues and topics (store/mailbox.rs, `Mailbox::incarnation`): the key
-- `inc` holds the newest incarnation of the queue or topic Redis has seen (its znode's czxid),
-- negative once deleted (retire.lua). False for a write made for an older or deleted incarnation
-- (through a node whose metadata cache is stale); on a newer one, records it after deleting
-- `leftovers` (what an older incarnation left). `mine` 0: not checked.
local function incarnation_ok(inc_key, mine, leftovers)
  if mine == 0 then return true end
  local marker = tonumber(redis.call('GET', inc_key) or '0')
  local known = math.abs(marker)
  if known > mine or marker == -mine then return false end
  if known < mine then
    if known ~= 0 then
      for _, k in ipairs(leftovers) do redis.call('DEL', k) end
    end
    redis.call('SET', inc_key, mine)
  end
  return true
end
