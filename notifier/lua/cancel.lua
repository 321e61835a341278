-- KEYS: bucket hash, window zset. ARGV: member. Gives back a slot taken by reserve() and not used.
local b = redis.call('HMGET', KEYS[1], 'limit', 'remaining', 'probe_until')
redis.call('HDEL', KEYS[1], 'probe_until')
local limit = tonumber(b[1])
local remaining = tonumber(b[2])
if limit ~= nil and remaining ~= nil and b[3] == false and remaining < limit then
  redis.call('HSET', KEYS[1], 'remaining', tostring(remaining + 1))
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
