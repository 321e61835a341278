-- KEYS: lock key. ARGV: token, ttl_ms. Extends the lock while it is still this token's (1); takes it again
-- when it vanished and nobody took it (2: Redis lost it while we held it); 0 once another holds it.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
