--[[
  The Redis side of a commit, run by the worker after the ledger transaction has committed:
  the confirmed holds become a durable allocation, so reserved and on-hand both go down by the
  line's quantity (available stays the same). Fenced: it applies only to a confirmed reservation
  at the job's fence, so a re-run, or a stale worker, changes nothing.

  When Redis has lost the reservation (it lost its data), its holds went with it; a SKU state
  rebuilt from the ledger records in `ls` the last ledger entry it reflects. An allocation entry
  after `ls` is not yet in that on-hand, so on-hand goes down here; one at or before it already is.

  Input:
    KEYS[1]          reservation record (hash: s, v, c, u, ca, ex, l)
    KEYS[2i]         SKU state of line i, in the record's line order
    KEYS[2i + 1]     holds index of line i
    ARGV[1]          reservation id
    ARGV[2]          fence the commit job carries
    ARGV[3]          record retention once committed, milliseconds
    ARGV[2 + 2i]     quantity of line i, units (the job's copy of the record's lines)
    ARGV[3 + 2i]     ledger entry id of line i's allocation

  Output:
     {1}                     applied
     {0, status}             not confirmed at this fence (already committed, or a stale job)
     {0, "missing", n}       Redis lost the reservation; n SKU states had on-hand lowered
]]
--- @include "includes/common"
--- @include "includes/holds"
--- @include "includes/reservations"

-- Redis lost the reservation and its holds; on-hand of a SKU state rebuilt before this
-- allocation's entry does not reflect it yet.
local function commitLostReservation(lineCount)
  local applied = 0
  for i = 1, lineCount do
    local skuKey = KEYS[2 * i]
    local quantity, entryId = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
    local state = redis.call('HMGET', skuKey, 'onHand', 'ls')
    if state[1] and state[2] and entryId > tonumber(state[2]) then
      redis.call('HINCRBY', skuKey, 'onHand', -quantity)
      redis.call('HINCRBY', skuKey, 'ov', 1)
      applied = applied + 1
    end
  end
  return applied
end

local lineCount = (#KEYS - 1) / 2
if lineCount < 1 or lineCount ~= math.floor(lineCount) then fail('KEYS must be 1 + 2 per line') end
if #ARGV ~= 3 + 2 * lineCount then fail('ARGV must be 3 + 2 per line') end
local record = redis.call('HMGET', KEYS[1], 's', 'v', 'l')
if not record[1] then return { 0, 'missing', commitLostReservation(lineCount) } end
if record[1] ~= 'confirmed' or record[2] ~= ARGV[2] then return { 0, record[1] } end

local lines = recordLines(record[3])
local keys = lineKeys(lines, 2)
local scores = {}
for i, line in ipairs(lines) do
  scores[i] = redis.call('ZSCORE', keys[i].holdsKey, ARGV[1] .. ':' .. line.quantity)
  if redis.call('EXISTS', keys[i].skuKey) == 1 then
    local state = redis.call('HMGET', keys[i].skuKey, 'onHand', 'reserved')
    if not scores[i] then fail('confirmed reservation ' .. ARGV[1] .. ' has no hold on ' .. line.sku) end
    if tonumber(state[1]) < line.quantity or tonumber(state[2]) < line.quantity then
      fail('on-hand or reserved below a confirmed hold on ' .. line.sku)
    end
  end
end
for i, line in ipairs(lines) do
  -- A SKU state Redis lost is rebuilt from the ledger, which has this allocation.
  if redis.call('EXISTS', keys[i].skuKey) == 1 then
    redis.call('ZREM', keys[i].holdsKey, ARGV[1] .. ':' .. line.quantity)
    redis.call('HINCRBY', keys[i].skuKey, 'reserved', -line.quantity)
    redis.call('HINCRBY', keys[i].skuKey, 'onHand', -line.quantity)
    redis.call('HINCRBY', keys[i].skuKey, 'ov', 1)
    auditHoldChange(keys[i].skuKey, auditCursor(keys[i].skuKey), scores[i], -line.quantity)
  end
end
redis.call('HSET', KEYS[1], 's', 'committed', 'cm', integerString(nowMs()))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return { 1 }
