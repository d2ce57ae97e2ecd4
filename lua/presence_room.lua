-- Adds users to the online set of one room: a ZSET scored by the time each
-- member's presence expires (last_seen + ttl), so members of different ttls
-- share one set and a query drops the expired ones with one
-- ZREMRANGEBYSCORE. ZADD GT only moves a member forward, so a replay after a
-- failover is harmless.
-- KEYS[1] = room key, e.g. "levee:presence:room:{lobby}"
-- ARGV = expires_ms, user, expires_ms, user, ... (any number of pairs)
-- Returns the number of members added or moved forward.
--
-- One ZADD per 1,000 members: unpack() of all of ARGV at once fails past
-- about 4,000 members (Lua's C stack holds 8,000 values), and a room's
-- backlog after an outage is larger than that.
local step = 2000 -- ARGV entries: 1,000 members
local n = 0
for i = 1, #ARGV, step do
  n = n + redis.call('ZADD', KEYS[1], 'GT', 'CH', unpack(ARGV, i, math.min(i + step - 1, #ARGV)))
end
-- The set lives as long as its latest member; an abandoned room vanishes.
local top = redis.call('ZRANGE', KEYS[1], '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')
if top[2] then
  redis.call('PEXPIREAT', KEYS[1], string.format('%d', tonumber(top[2]) + 1000))
end
return n
