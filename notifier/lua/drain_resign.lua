-- KEYS: the webhook's drain stream, its owner key. ARGV: the drain's token.
-- Unregisters the drain while it is still this token's (compare-and-delete): enqueued alerts get jobs again.
-- Returns 1 when it did, 0 when another drain (or none) is registered.
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
