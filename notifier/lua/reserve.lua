#!lua
-- The shebang (Redis 7 script flags, none given) has Redis refuse the whole script while it refuses writes
-- (OOM): without it the first write, a ZREMRANGEBYSCORE that frees memory, lets the others through, and a
-- notifier would go on posting while Redis counts as away.
-- KEYS: bucket hash, window zset, global block.
-- ARGV: now, per_minute, window, probe seconds, member ('' = take no slot: only learn the answer), ttl_ms,
-- probe poll (the longest wait while a probe is in flight); then the answer to learn first ('' in all six when
-- there is none): when it came, its limit ('' = no rate-limit headers: it only ends a probe), remaining,
-- reset_after, bucket id, the tolerance within which two resets are one window.
-- Learns the answer, then takes a slot. Returns "0" after taking one (or learning only), "probe" after taking
-- the one request that may go while the bucket is unknown, or the seconds to wait (as a string: Lua numbers
-- would be truncated).
-- The per-minute window: the bucket hash's `free` is how many slots the window zset is known to have free (for
-- `per_minute`); each slot taken uses one, and the zset is trimmed and counted again only once none is known
-- free. Time only frees more slots, so the figure stays on the safe side without reading the zset each time.
local now = tonumber(ARGV[1])
local per_minute = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local probe_seconds = tonumber(ARGV[4])
local member = ARGV[5]
local ttl_ms = tonumber(ARGV[6])
local b = redis.call('HMGET', KEYS[1], 'limit', 'remaining', 'reset_at', 'blocked_until', 'probe_until', 'window',
  'guessed', 'free', 'per_minute', 'kept_at')
local limit = tonumber(b[1])
local remaining = tonumber(b[2])
local reset_at = tonumber(b[3]) or 0
local blocked_until = tonumber(b[4]) or 0
local probe_until = tonumber(b[5]) or 0
local bucket_window = tonumber(b[6])
local fields = {}
local function set(name, value)
  fields[#fields + 1] = name
  fields[#fields + 1] = tostring(value)
end
local clear_probe = false

-- The answer: it ends a probe; its headers teach the bucket (the lower remaining of one window wins).
if ARGV[8] ~= '' then
  clear_probe = b[5] ~= false
  probe_until = 0
  if ARGV[9] ~= '' then
    local answered = tonumber(ARGV[8])
    local reset_after = tonumber(ARGV[11])
    local new_reset = answered + reset_after
    local new_remaining = tonumber(ARGV[10])
    if remaining == nil or reset_at <= answered or new_reset > reset_at + tonumber(ARGV[13]) then
      remaining = new_remaining
      reset_at = new_reset
    elseif b[7] == '1' then
      remaining = math.min(remaining, new_remaining)
      reset_at = new_reset
    else
      remaining = math.min(remaining, new_remaining)
      reset_at = math.max(reset_at, new_reset)
    end
    limit = tonumber(ARGV[9])
    bucket_window = math.max(bucket_window or 0, reset_after)
    set('limit', limit)
    set('remaining', remaining)
    set('reset_at', reset_at)
    set('guessed', '0')
    set('window', bucket_window)
    if ARGV[12] ~= '' then set('bucket', ARGV[12]) end
  end
end

local function keep(ttl)
  -- Write what changed; the keys live `ttl_ms` from the last write that was at least half of it ago.
  if clear_probe then redis.call('HDEL', KEYS[1], 'probe_until') end
  if #fields == 0 then return end
  local kept_at = tonumber(b[10])
  if kept_at == nil or now - kept_at > ttl_ms / 2000 then
    set('kept_at', now)
    redis.call('HSET', KEYS[1], unpack(fields))
    redis.call('PEXPIRE', KEYS[1], ttl_ms)
    if ttl then redis.call('PEXPIRE', KEYS[2], ttl_ms) end
  else
    redis.call('HSET', KEYS[1], unpack(fields))
  end
end

if member == '' then
  keep(false)
  return '0'
end

local wait = 0
local global_until = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
if global_until > now then wait = global_until - now end
if blocked_until > now then wait = math.max(wait, blocked_until - now) end
local probing = false
local rolled = false
if limit == nil or limit <= 0 or remaining == nil then
  if probe_until > now then
    wait = math.max(wait, math.min(probe_until - now, tonumber(ARGV[7])))
  else
    probing = true
  end
elseif reset_at <= now then
  rolled = true  -- a new window, guessed from the last one until an answer says
elseif remaining <= 0 then
  wait = math.max(wait, reset_at - now)
end
local free = nil
if tonumber(b[9]) == per_minute then free = tonumber(b[8]) end
if free == nil or free <= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  free = per_minute - redis.call('ZCARD', KEYS[2])
  if free <= 0 then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now)
  end
  set('free', math.max(free, 0))
  set('per_minute', per_minute)
end
if wait > 0 then
  keep(false)
  return tostring(wait)
end
if probing then
  set('probe_until', now + probe_seconds)
  clear_probe = false
elseif rolled then
  set('remaining', limit - 1)
  set('reset_at', now + (bucket_window or probe_seconds))
  set('guessed', '1')
else
  set('remaining', remaining - 1)
end
set('free', free - 1)
redis.call('ZADD', KEYS[2], now, member)
keep(true)
if probing then return 'probe' end
return '0'
