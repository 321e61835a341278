-- KEYS: lock key[, the webhook's drain stream, its owner key]. ARGV: token, ttl_ms[, the drain's token].
-- Extends the lock while it is still this token's (1); takes it again when it vanished and nobody took it
-- (2: Redis lost it while we held it); 0 once another holds it. While the holder is the webhook's registered
-- drain (notifier/lingering.py), the drain's stream and owner key get the same lease.
local holder = redis.call('GET', KEYS[1])
local held
if holder == ARGV[1] then
  held = redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  held = 2
else
  return 0
end
if ARGV[3] and redis.call('GET', KEYS[3]) == ARGV[3] then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return held
