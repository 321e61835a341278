-- KEYS: bucket hash. ARGV: now, limit, remaining, reset_after, bucket id, ttl_ms, same-window tolerance.
local now = tonumber(ARGV[1])
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'probe_until')
  return 0
end
local limit = tonumber(ARGV[2])
local remaining = tonumber(ARGV[3])
local reset_after = tonumber(ARGV[4])
local new_reset = now + reset_after
local b = redis.call('HMGET', KEYS[1], 'remaining', 'reset_at', 'guessed', 'window', 'probe_until')
if b[5] then redis.call('HDEL', KEYS[1], 'probe_until') end
local cur_remaining = tonumber(b[1])
local cur_reset = tonumber(b[2]) or 0
local guessed = b[3] == '1'
local bucket_window = tonumber(b[4]) or 0
local tolerance = tonumber(ARGV[7])
if cur_remaining == nil or cur_reset <= now or new_reset > cur_reset + tolerance then
  cur_remaining = remaining
  cur_reset = new_reset
elseif guessed then
  cur_remaining = math.min(cur_remaining, remaining)
  cur_reset = new_reset
else
  cur_remaining = math.min(cur_remaining, remaining)
  cur_reset = math.max(cur_reset, new_reset)
end
bucket_window = math.max(bucket_window, reset_after)
local fields = {'limit', tostring(limit), 'remaining', tostring(cur_remaining), 'reset_at', tostring(cur_reset),
  'guessed', '0', 'window', tostring(bucket_window)}
if ARGV[5] ~= '' then
  fields[#fields + 1] = 'bucket'
  fields[#fields + 1] = ARGV[5]
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
