--[[
  Reads a SKU's counters after reclaiming its expired holds (bounded), so that "reserved" never
  counts a hold that has run out.

  Input:
    KEYS[1]  SKU state   (hash, see includes/projection)
    KEYS[2]  holds index (zset)
    ARGV[1]  reclaim limit: expired holds reclaimed in this call, at most

  Output:
    {1, onHand, reserved, pos[, reclaimed]}  onHand net of a pending debit (a decrease in effect);
                                     reclaimed: see withReclaimed in includes/holds
    {-1}                             SKU missing from Redis (unknown, or lost with Redis's data)
]]
--- @include "includes/common"
--- @include "includes/holds"

if redis.call('HEXISTS', KEYS[1], 'pos') == 0 then return { -1 } end
reclaimExpiredHolds(KEYS[1], KEYS[2], nowMs(), tonumber(ARGV[1]))
local state = redis.call('HMGET', KEYS[1], 'onHand', 'reserved', 'pos', 'debit')
return withReclaimed({ 1, tonumber(state[1]) - tonumber(state[4] or '0'), tonumber(state[2]), tonumber(state[3]) })
