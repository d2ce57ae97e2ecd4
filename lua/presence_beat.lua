-- Records the heartbeats of a batch's users whose keys share one hash slot
-- (one bucket: leveed groups a batch by bucket, see presence_service.hpp).
-- KEYS[i]   = presence key of user i, "levee:p:{b<bucket>}:<user>"
-- ARGV[1]   = ttl in milliseconds
-- ARGV[1+i] = last_seen of user i, milliseconds since the epoch
-- Only a newer beat moves last_seen forward, so replays after a failover
-- (the client retries whatever it was not told succeeded) are harmless.
-- Returns the number of keys that moved forward.
local ttl = tonumber(ARGV[1])
local old = redis.call('MGET', unpack(KEYS))
local moved = 0
for i, key in ipairs(KEYS) do
  local seen = tonumber(ARGV[i + 1])
  if seen > (old[i] and tonumber(old[i]) or 0) then
    -- Lua prints large numbers as floats: format the integer explicitly
    redis.call('SET', key, string.format('%d', seen), 'PX', ttl)
    moved = moved + 1
  else
    redis.call('PEXPIRE', key, ttl)
  end
end
return moved
