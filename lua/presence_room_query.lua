-- The members online in a room: expired members are removed here, lazily.
-- KEYS[1] = room key, "levee:presence:room:{ROOM}"
-- ARGV[1] = now (ms since the epoch), ARGV[2] = how many members to list
--           (those with the latest beats first).
-- Returns {count, member, member, ...}.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local count = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[2])
local out = {count}
if limit > 0 and count > 0 then
  local members = redis.call('ZRANGE', KEYS[1], '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, limit)
  for i = 1, #members do
    out[#out + 1] = members[i]
  end
end
return out
