--[[
  The reconciler's correction, with the ledger row held FOR SHARE and Redis caught up to the
  ledger's position: Redis and the ledger are compared at the same position, so any difference
  in on-hand is real drift and is set to the ledger's; a pending debit is left by a transaction
  that ended without committing (none can be in flight under the lock) and is released. A
  compare-and-set on the position: if anything moved it since the caller looked, nothing changes.

  Input:
    KEYS[1]  SKU state (hash, see includes/projection)
    ARGV[1]  the position the caller caught Redis up to (the ledger's)
    ARGV[2]  the ledger's on-hand at that position, units
    ARGV[3]  "1" for a dry run: report, change nothing

  Output:
     {1, onHandBefore, debitReleased}   done (onHandBefore = ARGV[2] when there was no drift)
     {0, pos}                           the position is not ARGV[1]: nothing changed
    {-1}                                SKU state missing
]]
--- @include "includes/common"
--- @include "includes/holds"
--- @include "includes/projection"

local state = redis.call('HMGET', KEYS[1], 'onHand', 'pos', 'debit')
if not state[2] then return { -1 } end
if state[2] ~= ARGV[1] then return { 0, tonumber(state[2]) } end
if ARGV[3] == '1' then return { 1, tonumber(state[1]), tonumber(state[3] or '0') } end
if state[1] ~= ARGV[2] then redis.call('HSET', KEYS[1], 'onHand', ARGV[2]) end
return { 1, tonumber(state[1]), clearOrphanDebit(KEYS[1]) }
