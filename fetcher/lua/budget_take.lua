-- Take up to `wanted` request slots from a budget shared by fetchers: a sorted set of the slots taken in the
-- last `window` seconds (member a unique token, score when its request started, or finished: see restamp).
-- KEYS[1]: the budget's set. ARGV: now, window, limit, wanted, token prefix.
-- Returns {granted, the oldest slot's time or false}: with nothing granted, the caller waits until that slot
-- leaves the window.
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local granted = math.max(math.min(wanted, limit - redis.call('ZCARD', KEYS[1])), 0)
for i = 1, granted do
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[5] .. i)
end
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 2000))
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {granted, oldest[2] or false}
