-- Records a batch of heartbeats of users whose keys share one hash slot.
-- KEYS[i]  = presence key of user i, e.g. "levee:{p:42}:u:alice"
-- ARGV[1]  = ttl in milliseconds
-- ARGV[1+i] = last_seen of user i, milliseconds since the epoch
-- Only a newer beat moves last_seen forward, so replays after a failover
-- (the client retries whatever it was not told succeeded) are harmless.
-- Returns the number of keys that moved forward.
local ttl = tonumber(ARGV[1])
local moved = 0
for i, key in ipairs(KEYS) do
  local seen = tonumber(ARGV[i + 1])
  local old = tonumber(redis.call('GET', key) or '0')
  if seen > old then
    redis.call('SET', key, string.format('%d', seen), 'PX', ttl)
    moved = moved + 1
  else
    redis.call('PEXPIRE', key, ttl)
  end
end
return moved
