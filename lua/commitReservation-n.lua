--[[
  The Redis side of a commit, run by the worker after the ledger transaction has committed:
  the confirmed holds become a durable allocation, so reserved and on-hand both go down by the
  line's quantity (available stays the same). Fenced: it applies only to a confirmed reservation
  at the job's fence, so a re-run, or a stale worker, changes nothing.

  Input:
    KEYS[1]          reservation record (hash: s, c, u, ca, ex, l, v)
    KEYS[2i]         SKU state of line i, in the record's line order
    KEYS[2i + 1]     holds index of line i
    ARGV[1]          reservation id
    ARGV[2]          fence the commit job carries
    ARGV[3]          record retention once committed, milliseconds

  Output:
     {1}             applied
     {0, status}     not confirmed at this fence (already committed, or a stale job): unchanged
     {0, "missing"}  Redis no longer has the reservation (it lost its data): unchanged; SKUs
                     rebuilt from the ledger already include the allocation
]]
--- @include "includes/common"
--- @include "includes/reservations"

local record = redis.call('HMGET', KEYS[1], 's', 'v', 'l')
if not record[1] then return { 0, 'missing' } end
if record[1] ~= 'confirmed' or record[2] ~= ARGV[2] then return { 0, record[1] } end

local lines = recordLines(record[3])
local keys = lineKeys(lines, 2)
for i, line in ipairs(lines) do
  if redis.call('EXISTS', keys[i].skuKey) == 1 then
    local state = redis.call('HMGET', keys[i].skuKey, 'onHand', 'reserved')
    if not redis.call('ZSCORE', keys[i].holdsKey, ARGV[1] .. ':' .. line.quantity) then
      fail('confirmed reservation ' .. ARGV[1] .. ' has no hold on ' .. line.sku)
    end
    if tonumber(state[1]) < line.quantity or tonumber(state[2]) < line.quantity then
      fail('on-hand or reserved below a confirmed hold on ' .. line.sku)
    end
  end
end
for i, line in ipairs(lines) do
  -- A SKU state Redis lost was rebuilt from the ledger: it has no hold and counts the allocation.
  if redis.call('EXISTS', keys[i].skuKey) == 1 then
    redis.call('ZREM', keys[i].holdsKey, ARGV[1] .. ':' .. line.quantity)
    redis.call('HINCRBY', keys[i].skuKey, 'reserved', -line.quantity)
    redis.call('HINCRBY', keys[i].skuKey, 'onHand', -line.quantity)
  end
end
redis.call('HSET', KEYS[1], 's', 'committed', 'cm', integerString(nowMs()))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return { 1 }
