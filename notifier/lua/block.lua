-- KEYS: bucket hash or global key. ARGV: until, is_global ("1"/"0"), ttl_ms.
local untl = tonumber(ARGV[1])
if ARGV[2] == '1' then
  local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
  if untl > cur then redis.call('SET', KEYS[1], tostring(untl), 'PX', ARGV[3]) end
else
  local cur = tonumber(redis.call('HGET', KEYS[1], 'blocked_until') or '0') or 0
  if untl > cur then redis.call('HSET', KEYS[1], 'blocked_until', tostring(untl)) end
  redis.call('HSET', KEYS[1], 'remaining', '0')
  redis.call('HDEL', KEYS[1], 'probe_until')
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
