-- KEYS: the queue's list, then the record (hash) of each job. ARGV: the job ids, in the order of KEYS[2..].
-- Drops each job still waiting in the queue: out of the list, and its record deleted, in one step so that no
-- worker can take it in between. A job no longer in the list (a worker took it, or it waits for a retry) is
-- left alone. Every copy of an id leaves the list (an enqueue that skipped RQ's unique check may have pushed
-- one twice). Returns how many were dropped.
local gone = {}
for i, id in ipairs(ARGV) do
  if redis.call('LREM', KEYS[1], 0, id) > 0 then gone[#gone + 1] = KEYS[i + 1] end
end
if #gone > 0 then redis.call('DEL', unpack(gone)) end
return #gone
