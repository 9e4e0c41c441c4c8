--[[
  Creates a SKU's Redis state from the ledger when Redis does not have it (a rebuild after Redis
  lost its data), at the ledger position it reflects. The caller reads the ledger row FOR SHARE,
  so no ledger write for the SKU lands between the read and this step. It never overwrites:
  when two callers race, the first one's state stands and the second changes nothing. Holds
  that outlived the state keep their units (summed into reserved).

  Input:
    KEYS[1]  SKU state   (hash, see includes/projection)
    KEYS[2]  holds index (zset)
    ARGV[1]  on-hand per the ledger, units
    ARGV[2]  the ledger position of that on-hand
    ARGV[3]  holds summed into the rebuilt state, at most
    ARGV[4]  the SKU's per-customer cap (field pcl, see includes/guards), "" when none

  Output:
     {1, holdCount}   created
     {0}              already there: nothing changed
    {-1, holdCount}   more holds than ARGV[3] outlived the state: not rebuilt here
]]
--- @include "includes/common"
--- @include "includes/holds"
--- @include "includes/projection"

if redis.call('HEXISTS', KEYS[1], 'pos') == 1 then return { 0 } end
local holds = rebuildState(KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3]))
if holds < 0 then return { -1, redis.call('ZCARD', KEYS[2]) } end
if ARGV[4] ~= nil and ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'pcl', ARGV[4]) end
return { 1, holds }
