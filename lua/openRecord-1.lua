--[[
  Writes a cart's reservation record, pending, once every slot holds its lines (Redis Cluster:
  the record is the coordinator, in its own slot). Idempotent: an existing record is left as it
  is (a resumed attempt, or a retry after the record was written).

  Input:
    KEYS[1]  the bucket of the reservation's record (see includes/record)
    ARGV[1]  reservation id
    ARGV[2]  client id
    ARGV[3]  customer id, "" when none
    ARGV[4]  createdAtMs
    ARGV[5]  expiresAtMs
    ARGV[6]  lines, "SKU:qty,SKU:qty"
    ARGV[7]  retention after the hold expires, ms
    ARGV[8]  "1" when the guards admitted the cart (its customer has an entry: includes/customer-entries)

  Output:
    {1}   written
    {2}   already there: unchanged
]]
--- @include "includes/common"
--- @include "includes/record"

if recordFind(KEYS[1], ARGV[1]) then return { 2 } end
if ARGV[6] == '' then fail('a record has at least one line') end
local expiresAt = tonumber(ARGV[5])
local record = { s = 'pending', v = 1, c = ARGV[2], u = ARGV[3] ~= '' and ARGV[3] or nil, ca = tonumber(ARGV[4]), ex = expiresAt, l = ARGV[6], g = ARGV[8] == '1' }
recordSave(KEYS[1], ARGV[1], record)
recordKeepUntil(record.b, expiresAt + tonumber(ARGV[7]), nowMs())
return { 1 }
