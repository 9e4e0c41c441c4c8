--[[
  One slot's part of confirming a cart across hash slots (Redis Cluster): pins this
  reservation's holds on the lines of this slot (score +inf: they stop expiring), all of them or
  none. A hold already pinned (a retry, a duplicate confirm) stays pinned. Pinning comes before the
  record's confirmation, so the units are held without a gap from the reservation to the commit
  (docs/design.md, "Redis Cluster"). A hold that is gone (reclaimed, released) or past its expiry
  refuses the whole slot, writing nothing: nobody can pin it any more, so the cart cannot be
  confirmed.

  Input:
    KEYS[2i-1]   SKU state of line i
    KEYS[2i]     holds index of line i
    ARGV[1]      reservation id
    ARGV[2i]     SKU of line i
    ARGV[2i+1]   quantity of line i

  Output:
    {1}               pinned (now, or already)
    {-1, sku, ...}    these lines' holds are gone or expired: nothing pinned here
]]
--- @include "includes/common"
--- @include "includes/holds"

local lineCount = #KEYS / 2
if lineCount < 1 or lineCount ~= math.floor(lineCount) then fail('KEYS must be 2 per line') end
if #ARGV ~= 1 + 2 * lineCount then fail('ARGV must be 1 + 2 per line') end
local now = nowMs()
local gone = {}
local scores = {}
for i = 1, lineCount do
  local member = ARGV[1] .. ':' .. ARGV[1 + 2 * i]
  local score = redis.call('ZSCORE', KEYS[2 * i], member)
  local value = nil
  if score then value = tonumber(score) end
  if value == nil or (value ~= math.huge and value <= now) then gone[#gone + 1] = ARGV[2 * i] else scores[i] = value end
end
if #gone > 0 then
  table.insert(gone, 1, -1)
  return gone
end
for i = 1, lineCount do
  if scores[i] ~= math.huge then
    local quantity = tonumber(ARGV[1 + 2 * i])
    redis.call('ZADD', KEYS[2 * i], 'XX', '+inf', ARGV[1] .. ':' .. ARGV[1 + 2 * i])
    local cursor = auditCursor(KEYS[2 * i - 1])
    auditHoldChange(KEYS[2 * i - 1], cursor, scores[i], -quantity)
    auditHoldChange(KEYS[2 * i - 1], cursor, math.huge, quantity)
  end
end
return { 1 }
