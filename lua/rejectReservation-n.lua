--[[
  The compensation path: a confirmed reservation whose allocation the ledger refused (it would
  take on-hand below zero) ends `rejected`, after the ledger recorded the rejection. Its holds
  are removed and their units given back to reserved, so nothing stays pinned. Fenced: only a
  confirmed reservation at the job's fence changes. When Redis lost the record, the holds the
  job names are still removed if they are there.

  Input:
    KEYS[1]          the bucket of the reservation's record (see includes/record)
    KEYS[2i]         SKU state of line i, in the job's line order
    KEYS[2i + 1]     holds index of line i
    ARGV[1]          reservation id
    ARGV[2]          fence the commit job carries
    ARGV[3]          record retention, milliseconds
    ARGV[3 + i]      quantity of line i, units

  Output:
    {1, units}           rejected; units given back
    {0, status, units}   not confirmed at this fence: status unchanged ("missing" when Redis lost
                         the record; its holds, if any, were removed)
]]
--- @include "includes/common"
--- @include "includes/holds"
--- @include "includes/reservations"
--- @include "includes/record"

local lineCount = (#KEYS - 1) / 2
if lineCount < 1 or lineCount ~= math.floor(lineCount) then fail('KEYS must be 1 + 2 per line') end
if #ARGV ~= 3 + lineCount then fail('ARGV must be 3 + 1 per line') end
local lines = {}
for i = 1, lineCount do
  local sku = string.match(KEYS[2 * i], '{(.*)}$')
  if not sku then fail('SKU state key without a hash tag: ' .. KEYS[2 * i]) end
  lines[i] = { sku = sku, quantity = tonumber(ARGV[3 + i]) }
end
local keys = lineKeys(lines, 2)
local record = recordLoad(KEYS[1], ARGV[1])
if not record then return { 0, 'missing', returnHolds(lines, keys, ARGV[1]) } end
if record.s ~= 'confirmed' or record.v ~= tonumber(ARGV[2]) then return { 0, record.s, 0 } end
local units = returnHolds(lines, keys, ARGV[1])
local now = nowMs()
record.s, record.at = 'rejected', now
recordSave(KEYS[1], ARGV[1], record)
recordKeepUntilAfterConfirmed(record.b, now + tonumber(ARGV[3]), now)
return { 1, units }
