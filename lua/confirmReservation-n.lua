--[[
  Confirms a pending reservation: its holds stop expiring (score +inf) and the record stops
  expiring, until the commit worker has written it to the ledger. Bumps the reservation's fence
  (a per-reservation version) that the commit job carries and the ledger write checks.
  A pending reservation past its expiry is expired here (its units come back) and refused.

  Input:
    KEYS[1]          reservation record (hash: s, c, u, ca, ex, l, v)
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

local record = redis.call('HMGET', KEYS[1], 's', 'ex', 'l', 'v')
local status = record[1]
if not status then return { -1 } end
if status == 'confirmed' or status == 'committed' or status == 'cancelled' or status == 'rejected' then return { 2, status, tonumber(record[4] or '1') } end
if status == 'released' then return { -2 } end
if status == 'expired' then return { -3 } end
if status ~= 'pending' then fail('unknown status ' .. status) end

local lines = recordLines(record[3])
local keys = lineKeys(lines, 2)
local now = nowMs()
if now >= tonumber(record[2]) then
  returnHolds(lines, keys, ARGV[1])
  redis.call('HSET', KEYS[1], 's', 'expired', 'ra', integerString(now))
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
-- A pending record carries no fence field: it is 1 until confirmed.
local fence = tonumber(record[4] or '1') + 1
redis.call('HSET', KEYS[1], 's', 'confirmed', 'v', fence, 'cf', integerString(now))
redis.call('PERSIST', KEYS[1])
return { 1, fence, now }
