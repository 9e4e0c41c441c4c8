--[[
  The Redis side of a cancellation, run by the worker after the ledger transaction that wrote
  the deallocation has committed: the units come back to on-hand. Fenced like the commit.

  Input:
    KEYS[1]          reservation record (hash: s, l, v, cx)
    KEYS[1 + i]      SKU state of line i, in the record's line order
    ARGV[1]          fence the cancel job carries
    ARGV[2]          record retention, milliseconds

  Output:
     {1}             applied
     {0, status}     not awaiting cancellation at this fence (done already, or stale): unchanged
     {0, "missing"}  Redis no longer has the reservation: unchanged; SKUs rebuilt from the
                     ledger already include the deallocation
]]
--- @include "includes/common"
--- @include "includes/reservations"

local record = redis.call('HMGET', KEYS[1], 's', 'v', 'l', 'cx')
if not record[1] then return { 0, 'missing' } end
if record[1] ~= 'committed' or record[2] ~= ARGV[1] or not record[4] then return { 0, record[1] } end
local lines = recordLines(record[3])
if #KEYS ~= 1 + #lines then fail('KEYS must be 1 + 1 per line') end
for i, line in ipairs(lines) do
  if not string.find(KEYS[1 + i], '{' .. line.sku .. '}', 1, true) then fail('KEYS out of line order at ' .. i) end
end
for i, line in ipairs(lines) do
  if redis.call('EXISTS', KEYS[1 + i]) == 1 then redis.call('HINCRBY', KEYS[1 + i], 'onHand', line.quantity) end
end
redis.call('HSET', KEYS[1], 's', 'cancelled', 'cn', integerString(nowMs()))
redis.call('HDEL', KEYS[1], 'cx')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return { 1 }
