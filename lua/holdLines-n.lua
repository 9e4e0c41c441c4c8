--[[
  One slot's part of a cart that spans hash slots (Redis Cluster; docs/design.md, "Redis
  Cluster"): checks and holds the lines whose SKUs live in this slot, all of them or none, for the
  reservation `reservationId`, at the expiry the coordinator chose. Idempotent: when this
  reservation already holds these lines here (a retry of the same cart), it changes nothing.

  Input:
    KEYS[2i-1]   SKU state of line i   (hash, see includes/projection)
    KEYS[2i]     holds index of line i (zset: "<reservationId>:<quantity>" -> expiresAt ms)
    ARGV[1]      reservation id
    ARGV[2]      expiresAt, ms (Redis time of the coordinator's slot)
    ARGV[3]      reclaim limit: expired holds reclaimed per SKU in this call, at most
    ARGV[4]      the flash-sale guards: "n" the cart has no customer (a SKU limited per customer
                 refuses it), "c" it has one and its customer step counted each line against the
                 limit given below (a SKU whose limit is another refuses it: the caller asks again)
    ARGV[2+3i]   SKU of line i (no duplicates)
    ARGV[3+3i]   quantity of line i, units (>= 1)
    ARGV[4+3i]   the per-customer limit the customer step used for line i's SKU, "" for none

  Output (each ends with a reclaim report when this call reclaimed holds: withReclaimed):
    {1}                                        held
    {2}                                        already held by this reservation (a retry)
    {-1, sku, requested, available, retryAfterMs, ...}   short lines; nothing held
    {-3, sku, ...}                             SKUs missing from Redis; nothing held
    {-6, sku}                                  sku is limited per customer; the cart has none
    {-8, sku, limit}                           sku's limit is not the one the customer step used
                                               ("" now: none); nothing held
]]
--- @include "includes/common"
--- @include "includes/holds"

local lineCount = #KEYS / 2
if lineCount < 1 or lineCount ~= math.floor(lineCount) then fail('KEYS must be 2 per line') end
if #ARGV ~= 4 + 3 * lineCount then fail('ARGV must be 4 + 3 per line') end
local reservationId, expiresAt, reclaimLimit, guard = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if reservationId == '' or expiresAt == nil or expiresAt < 0 then fail('a hold needs a reservation id and an expiry') end
if guard ~= 'n' and guard ~= 'c' then fail('the guard must be "n" or "c"') end

local lines = {}
local heldAlready = 0
for i = 1, lineCount do
  lines[i] = { sku = ARGV[2 + 3 * i], quantity = tonumber(ARGV[3 + 3 * i]), skuKey = KEYS[2 * i - 1], holdsKey = KEYS[2 * i] }
  if redis.call('ZSCORE', lines[i].holdsKey, reservationId .. ':' .. ARGV[3 + 3 * i]) then heldAlready = heldAlready + 1 end
end
-- One slot's lines are held in one step: all of them are there, or none.
if heldAlready == lineCount then return { 2 } end
if heldAlready > 0 then fail('reservation ' .. reservationId .. ' holds ' .. heldAlready .. ' of its ' .. lineCount .. ' lines in this slot') end

-- The guards' part in this slot: the limit each line was counted against is still the SKU's.
for i, line in ipairs(lines) do
  local limit = redis.call('HGET', line.skuKey, 'pcl') or ''
  if guard == 'n' and limit ~= '' then return { -6, line.sku } end
  if guard == 'c' and limit ~= ARGV[4 + 3 * i] then return { -8, line.sku, limit } end
end

local missing, short, cursors = checkLines(lines, nowMs(), reclaimLimit)
local refused = refusal(missing, short)
if refused then return refused end
holdLines(lines, cursors, reservationId, expiresAt)
return withReclaimed({ 1 })
