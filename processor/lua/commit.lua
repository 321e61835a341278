-- After shared/lua/jobs.lua (its `enqueue`, and the first line that has Redis refuse the whole script while it
-- refuses writes): the Redis side of a batch of entries the processor committed, in one step: the sorted sets
-- it changes (events to watch, matches whose votes are wanted, deferred tips), its alerts handed over or
-- enqueued, the entries acknowledged.
-- KEYS: the fetched stream, the z sorted sets, then the keys of jobs.lua's `enqueue`.
-- ARGV: the consumer group; the entries to acknowledge (a count, then their ids); z; for each sorted set the
-- members it loses (a count, then the members), then those it gains (a count, then score and member pairs);
-- then the arguments of `enqueue`. Returns what `enqueue` returns.
local at = 2
local function section(width)  -- the next count, then its items (`width` arguments each)
  local items = {}
  local n = tonumber(ARGV[at]) * width
  for i = at + 1, at + n do items[#items + 1] = ARGV[i] end
  at = at + 1 + n
  return items
end
-- A command on many items, 1000 at a time (unpack() is bounded by Lua's stack; 1000 keeps pairs whole).
local function each(command, head, items)
  for i = 1, #items, 1000 do
    local args = {unpack(head)}
    for j = i, math.min(i + 999, #items) do args[#args + 1] = items[j] end
    redis.call(command, unpack(args))
  end
end
local acks = section(1)
local z = tonumber(ARGV[at])
at = at + 1
for k = 2, 1 + z do
  each('ZREM', {KEYS[k]}, section(1))
  each('ZADD', {KEYS[k]}, section(2))
end
local handled = enqueue(2 + z, at)
each('XACK', {KEYS[1], ARGV[1]}, acks)
return handled
