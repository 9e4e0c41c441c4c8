--[[
  Forgets entries of a customer on a Redis Cluster (includes/customer-entries) whose reservations
  have ended: after a release, a commit or a reject, after a cart was refused or abandoned, or
  when a refused admission found the record ended. Fenced per entry: `*` forgets whatever the
  entry says, a value forgets it only while it still says exactly that (a check that read a record
  as ended must not forget an entry rewritten since).

  Input:
    KEYS[1]      the customer's entries (hash)
    ARGV[2i-1]   reservation id
    ARGV[2i]     "*", or the value the entry must still have

  Output:
    {forgotten}
]]
--- @include "includes/common"
--- @include "includes/customer-entries"

if #ARGV < 2 or #ARGV % 2 ~= 0 then fail('ARGV must be pairs of id and expected value') end
local key = KEYS[1]
local forgotten = 0
for i = 1, #ARGV, 2 do
  local value = redis.call('HGET', key, ARGV[i])
  if value and (ARGV[i + 1] == '*' or ARGV[i + 1] == value) then
    redis.call('HDEL', key, ARGV[i])
    forgotten = forgotten + 1
  end
end
if forgotten > 0 then customerKeepFor(key, customerLiveEntries(key, nowMs())) end
return { forgotten }
