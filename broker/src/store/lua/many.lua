-- Prepended to every script (store/mod.rs `lua_script!`). Each `redis.call` costs Redis about
-- 1.5 µs beyond the command's own work (BENCHMARKS.md), and a member more in a command that takes
-- many costs a small part of that: so a script that handles several messages makes one call per
-- key for all of them wherever Redis has a command that takes many (HSET, HMGET, HDEL, ZADD,
-- ZREM, ZMSCORE), not one per message. Group commit (store/group.rs) puts several requests'
-- messages into one call, so under load this is most of what Redis spends per message.

-- At most this many arguments after the key in one call (Lua's unpack has a limit near 8000).
-- Even, so that field/value and score/member pairs are never split.
local MANY_CHUNK = 1000

-- `redis.call(cmd, key, args...)` for a list `args` of any length, in chunks of MANY_CHUNK;
-- returns the replies of a command that answers per argument (HMGET, ZMSCORE) as one list.
-- An empty list makes no call.
local function many(cmd, key, args)
  if #args == 0 then return {} end
  if #args <= MANY_CHUNK then return redis.call(cmd, key, unpack(args)) end
  local all = {}
  for i = 1, #args, MANY_CHUNK do
    local r = redis.call(cmd, key, unpack(args, i, math.min(i + MANY_CHUNK - 1, #args)))
    if type(r) == 'table' then
      for _, v in ipairs(r) do all[#all + 1] = v end
    end
  end
  return all
end
