-- KEYS: lock key. ARGV: token, ttl_ms. Extends the lock only while it is still this token's; 0 once lost.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
