--[[
  Gives back one slot's part of a cart that spans hash slots: removes the reservation's holds on
  these lines that are still indexed and returns their units (the compensation when another
  slot's lines were short, and the release of a cart). Idempotent: a hold already gone (returned
  before, reclaimed on expiry, applied by a commit) is skipped. A compensation keeps pinned holds:
  a pin means another attempt of the same cart confirmed it, so those units are the buyer's.

  Input:
    KEYS[2i-1]   SKU state of line i
    KEYS[2i]     holds index of line i
    ARGV[1]      reservation id
    ARGV[2]      "keep-pinned" (a compensation) or "all" (release, reject, a confirm that expired)
    ARGV[1+2i]   SKU of line i (i from 1)
    ARGV[2+2i]   quantity of line i

  Output:
    {units}      the units given back by this call
]]
--- @include "includes/common"
--- @include "includes/holds"
--- @include "includes/reservations"

local lineCount = #KEYS / 2
if lineCount < 1 or lineCount ~= math.floor(lineCount) then fail('KEYS must be 2 per line') end
if #ARGV ~= 2 + 2 * lineCount then fail('ARGV must be 2 + 2 per line') end
if ARGV[2] ~= 'keep-pinned' and ARGV[2] ~= 'all' then fail('returnLines: keep-pinned or all, got ' .. tostring(ARGV[2])) end
local lines = {}
for i = 1, lineCount do
  lines[i] = { sku = ARGV[1 + 2 * i], quantity = tonumber(ARGV[2 + 2 * i]) }
  if lines[i].quantity == nil or lines[i].quantity < 1 then fail('quantity must be >= 1 for ' .. lines[i].sku) end
end
return { returnHolds(lines, lineKeys(lines, 1), ARGV[1], ARGV[2] == 'keep-pinned') }
