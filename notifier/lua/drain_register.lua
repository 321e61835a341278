-- KEYS: the webhook's drain stream, its owner key. ARGV: the drain's token, lease_ms.
-- Registers the drain: from now on alerts enqueued for the webhook are added to the stream (shared/lua/jobs.lua).
-- A stream left by an earlier drain is replaced (its alerts are pending in the outbox, which the new drain reads
-- next). Returns the id of the stream's first entry (the registration): the drain reads what comes after it.
redis.call('DEL', KEYS[1])
local first = redis.call('XADD', KEYS[1], '*', 'registered', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return first
