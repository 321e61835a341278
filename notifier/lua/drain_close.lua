-- KEYS: the webhook's drain stream, its owner key. ARGV: the drain's token, the id of the last entry it read.
-- The idle drain leaves, atomically with the enqueue script's check that it is there: when nothing was added
-- to the stream since that entry, it is unregistered ({1}); otherwise it stays and reads on from the newest
-- entry added ({2, its id}). {0}: it was no longer registered (its lease ran out).
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {0} end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '(' .. ARGV[2], 'COUNT', 1)
if #newest == 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {1}
end
return {2, newest[1][1]}
