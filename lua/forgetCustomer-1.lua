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
-- Every entry is read (and a malformed one refused) before the first write.
local live = customerLiveEntries(key, nowMs())
local forget = {}
for i = 1, #ARGV, 2 do forget[ARGV[i]] = ARGV[i + 1] end
local kept, gone = {}, {}
for _, entry in ipairs(live) do
  local expected = forget[entry.id]
  if expected and (expected == '*' or expected == entry.value) then gone[#gone + 1] = entry.id else kept[#kept + 1] = entry end
end
if #gone > 0 then
  redis.call('HDEL', key, unpack(gone))
  customerKeepFor(key, kept)
end
return { #gone }
