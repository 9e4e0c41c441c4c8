--[[
  Confirms a pending reservation: its holds stop expiring (score +inf) and the record stops
  expiring, until the commit worker has written it to the ledger. Bumps the reservation's fence
  (a per-reservation version) that the commit job carries and the ledger write checks.
  A pending reservation past its expiry is expired here (its units come back) and refused.

  Input:
    KEYS[1]          the bucket of the reservation's record (see includes/record)
    KEYS[2i]         SKU state of line i, in the record's line order
    KEYS[2i + 1]     holds index of line i
    ARGV[1]          reservation id

  Output:
     {1, fence, confirmedAtMs}   confirmed now
     {2, status, fence}          already confirmed, committed, cancelled or rejected: nothing changed
    {-1}                         no such reservation
    {-2}                         released
    {-3}                         expired
]]
--- @include "includes/common"
--- @include "includes/holds"
--- @include "includes/reservations"
--- @include "includes/record"

local record = recordLoad(KEYS[1], ARGV[1])
if not record then return { -1 } end
local status = record.s
if status == 'confirmed' or status == 'committed' or status == 'cancelled' or status == 'rejected' then return { 2, status, record.v } end
if status == 'released' then return { -2 } end
if status == 'expired' then return { -3 } end
if status ~= 'pending' then fail('unknown status ' .. status) end

local lines = recordLines(record.l)
local keys = lineKeys(lines, 2)
local now = nowMs()
if now >= record.ex then
  returnHolds(lines, keys, ARGV[1])
  record.s, record.at = 'expired', now
  recordSave(KEYS[1], ARGV[1], record)
  return { -3 }
end
-- A pending hold before its expiry cannot have been reclaimed: check them all before writing.
local scores = {}
for i, line in ipairs(lines) do
  scores[i] = redis.call('ZSCORE', keys[i].holdsKey, ARGV[1] .. ':' .. line.quantity)
  if not scores[i] then fail('pending reservation ' .. ARGV[1] .. ' lost its hold on ' .. line.sku) end
end
for i, line in ipairs(lines) do
  redis.call('ZADD', keys[i].holdsKey, 'XX', '+inf', ARGV[1] .. ':' .. line.quantity)
  local cursor = auditCursor(keys[i].skuKey)
  auditHoldChange(keys[i].skuKey, cursor, scores[i], -line.quantity)
  auditHoldChange(keys[i].skuKey, cursor, math.huge, line.quantity)
end
local fence = record.v + 1
record.s, record.v, record.cf = 'confirmed', fence, now
recordSave(KEYS[1], ARGV[1], record)
recordKeepForever(record.b)
return { 1, fence, now }
