#!lua
-- The first line (Redis 7 script flags, none given) has Redis refuse the whole script while it refuses writes
-- (OOM, a read-only replica) instead of running it up to its first write. This file is the head of the
-- scripts that enqueue alerts (enqueue.lua, processor/lua/commit.lua): it defines `enqueue` for them.
--
-- enqueue(k, a): each alert goes to its webhook's lingering drain when one is registered, else gets its RQ
-- job unless a job of its id exists (RQ's unique enqueue: what `enqueue_call(unique=True)` runs for one
-- job, EXISTS, HSET, RPUSH), reading KEYS from index k and ARGV from index a, up to their ends.
-- KEYS: the queue's list, RQ's set of queues, the d drain streams named below, then the hash of each job.
-- ARGV: the queue's key (its member in RQ's set of queues); the number s of fields all the jobs share and
-- those s field/value pairs; d; then for each job its id, the index (1..d) of its webhook's drain stream
-- (0: none), the number n of its own fields and those n field/value pairs.
-- A drain stream exists only while its drain is registered (notifier/lingering.py): XADD NOMKSTREAM adds the
-- job's id to it, or does nothing when there is none, in one step, so an alert is never handed to a drain
-- that already left (and a drain found absent is not tried again in the same call). Returns how many alerts
-- were handed to a drain or given a job.
local function enqueue(k, a)
  local s = tonumber(ARGV[a + 1])
  local common_from, common_to = a + 2, a + 1 + 2 * s
  local at = common_to + 1
  local d = tonumber(ARGV[at])
  at = at + 1
  local enqueued, handed = {}, 0
  local absent = {}  -- drains found not registered: the script runs alone, so they stay so until it ends
  for j = k + 2 + d, #KEYS do
    local id, drain, n = ARGV[at], tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
    local given = false
    if drain > 0 and not absent[drain] then
      given = redis.call('XADD', KEYS[k + 1 + drain], 'NOMKSTREAM', 'MAXLEN', '~', '1000', '*', 'job', id)
      absent[drain] = not given
    end
    if given then
      handed = handed + 1
    elseif redis.call('EXISTS', KEYS[j]) == 0 then
      local fields = {unpack(ARGV, common_from, common_to)}
      for i = at + 3, at + 2 + 2 * n do fields[#fields + 1] = ARGV[i] end
      redis.call('HSET', KEYS[j], unpack(fields))
      enqueued[#enqueued + 1] = id
    end
    at = at + 3 + 2 * n
  end
  if #enqueued > 0 then
    redis.call('RPUSH', KEYS[k], unpack(enqueued))
    redis.call('SADD', KEYS[k + 1], ARGV[a])
  end
  return #enqueued + handed
end
