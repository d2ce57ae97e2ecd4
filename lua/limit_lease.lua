-- Leases global rate-limit quota: takes up to `want` tokens from one GCRA
-- bucket, so that every token goes to exactly one nginx. Same arithmetic as
-- ngx_module/core/gcra.cpp (gcra_take_n).
-- KEYS[1] = bucket, "levee:limit:{ZONE:KEY}:PERIOD_US:CAPACITY", e.g.
--           "levee:limit:{per_ip:1.2.3.4}:100000:11" (10 r/s, burst=10): the
--           parameters are in the key, so a TAT is only ever read with the
--           period it was written with, whatever rates run side by side
--           during a rolling reload
-- KEYS[2] = the bucket's lease ledger, KEYS[1] .. ":leases" (optional): a
--           HASH of each leveed's last lease of the bucket, "SEQ:GRANTED"
-- ARGV[1] = period_us (1 / rate), ARGV[2] = capacity (burst + 1), ARGV[3] = want;
--           the same numbers as in the key
-- ARGV[4], ARGV[5] = the lease's id (with KEYS[2]): the leveed that asks
--           (a random id of the process) and the lease's number there
-- Returns the number of tokens granted.
-- The clock is the master's (TIME): one clock per bucket, whichever nginx asks.
--
-- leveed sends a lease again, with the same id, when it does not know
-- whether the first one ran (the connection was lost or timed out after
-- sending it). Spending again would take the tokens from the bucket twice
-- and hand out only one grant; the ledger answers the first grant instead.
-- One field per leveed: its leases of one bucket seldom overlap (an nginx
-- has one lease of a key out at a time, and leveed fails new ones while one
-- is unanswered past its deadline); where two do, a retry of the older one
-- spends again.
local ledger, who, seq = KEYS[2], ARGV[4], ARGV[5]
if ledger and who then
  local last = redis.call('HGET', ledger, who)
  if last then
    local s, granted = string.match(last, '^(%d+):(%d+)$')
    if s == seq then
      return tonumber(granted)
    end
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
local room = now + capacity * period - tat
if room <= 0 or want <= 0 then
  return 0
end
local n = math.floor(room / period)
if n > want then
  n = want
end
tat = tat + n * period
-- the key outlives its state by a second: an idle bucket is a full bucket
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
if ledger and who then
  -- outlives leveed's 15 s of retries
  redis.call('HSET', ledger, who, seq .. ':' .. string.format('%d', n))
  redis.call('PEXPIRE', ledger, 30000)
end
return n
