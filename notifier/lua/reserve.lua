#!lua
-- The shebang (Redis 7 script flags, none given) has Redis refuse the whole script while it refuses writes
-- (OOM): without it the first write, a ZREMRANGEBYSCORE that frees memory, lets the others through, and a
-- notifier would go on posting while Redis counts as away.
-- KEYS: bucket hash, window zset, global block.
-- ARGV: now, per_minute, window, probe seconds, member, ttl_ms, probe poll (the longest wait while a probe is in flight).
-- Returns "0" after taking a slot, or the seconds to wait (as a string: Lua numbers would be truncated).
local now = tonumber(ARGV[1])
local per_minute = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local probe_seconds = tonumber(ARGV[4])
local wait = 0
local global_until = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
if global_until > now then wait = global_until - now end
local b = redis.call('HMGET', KEYS[1], 'limit', 'remaining', 'reset_at', 'blocked_until', 'probe_until', 'window')
local limit = tonumber(b[1])
local remaining = tonumber(b[2])
local reset_at = tonumber(b[3]) or 0
local blocked_until = tonumber(b[4]) or 0
local probe_until = tonumber(b[5]) or 0
local bucket_window = tonumber(b[6]) or probe_seconds
if blocked_until > now then wait = math.max(wait, blocked_until - now) end
local probing = false
local new_reset = reset_at
if limit == nil or limit <= 0 or remaining == nil then
  if probe_until > now then
    wait = math.max(wait, math.min(probe_until - now, tonumber(ARGV[7])))
  else
    probing = true
  end
else
  if reset_at <= now then
    remaining = limit
    new_reset = now + bucket_window
  end
  if remaining <= 0 then wait = math.max(wait, reset_at - now) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) >= per_minute then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(oldest[2]) + window - now)
end
if wait > 0 then return tostring(wait) end
if probing then
  redis.call('HSET', KEYS[1], 'probe_until', tostring(now + probe_seconds))
elseif new_reset ~= reset_at then
  redis.call('HSET', KEYS[1], 'remaining', tostring(remaining - 1), 'reset_at', tostring(new_reset), 'guessed', '1')
else
  redis.call('HSET', KEYS[1], 'remaining', tostring(remaining - 1))
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], math.floor((window + 5) * 1000))
return '0'
