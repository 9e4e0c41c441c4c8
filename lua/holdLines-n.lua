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
    ARGV[2+2i]   SKU of line i (no duplicates)
    ARGV[3+2i]   quantity of line i, units (>= 1)

  Output (each ends with a reclaim report when this call reclaimed holds: withReclaimed):
    {1}                                        held
    {2}                                        already held by this reservation (a retry)
    {-1, sku, requested, available, retryAfterMs, ...}   short lines; nothing held
    {-3, sku, ...}                             SKUs missing from Redis; nothing held
]]
--- @include "includes/common"
--- @include "includes/holds"

local lineCount = #KEYS / 2
if lineCount < 1 or lineCount ~= math.floor(lineCount) then fail('KEYS must be 2 per line') end
if #ARGV ~= 3 + 2 * lineCount then fail('ARGV must be 3 + 2 per line') end
local reservationId, expiresAt, reclaimLimit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if reservationId == '' or expiresAt == nil or expiresAt < 0 then fail('a hold needs a reservation id and an expiry') end

local lines = {}
local heldAlready = 0
for i = 1, lineCount do
  lines[i] = { sku = ARGV[2 + 2 * i], quantity = tonumber(ARGV[3 + 2 * i]), skuKey = KEYS[2 * i - 1], holdsKey = KEYS[2 * i] }
  if redis.call('ZSCORE', lines[i].holdsKey, reservationId .. ':' .. ARGV[3 + 2 * i]) then heldAlready = heldAlready + 1 end
end
-- One slot's lines are held in one step: all of them are there, or none.
if heldAlready == lineCount then return { 2 } end
if heldAlready > 0 then fail('reservation ' .. reservationId .. ' holds ' .. heldAlready .. ' of its ' .. lineCount .. ' lines in this slot') end

local missing, short, cursors = checkLines(lines, nowMs(), reclaimLimit)
local refused = refusal(missing, short)
if refused then return refused end
holdLines(lines, cursors, reservationId, expiresAt)
return withReclaimed({ 1 })
