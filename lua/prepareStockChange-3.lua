--[[
  The Redis step of a stock change, run inside the Postgres transaction that holds the SKU's
  ledger row FOR UPDATE (so no other ledger write for this SKU is in flight). Redis must never
  offer units the ledger does not have, so a decrease takes effect here, before the ledger can
  commit it, as a pending debit with its own id: absorbed when its entry is applied
  (applyEntries), released by that id if the transaction rolls back (releaseDebit). An increase
  is applied after the COMMIT, through applyEntries, like every other entry.

  Redis must first be at the ledger's position (the caller applies the missing entries when told
  so). At the same position any difference in on-hand is real drift, set to the ledger's; and a
  debit still pending belongs to a transaction that has ended without committing (the row lock
  says so), so it is released.

  Input:
    KEYS[1]  SKU state (hash, see includes/projection)
    KEYS[2]  holds index (zset)
    KEYS[3]  unknown-SKU marker (string, see lib/stock/sku-state.ts): deleted, the SKU exists now
    ARGV[1]  the ledger's position for the SKU (under the row lock)
    ARGV[2]  the ledger's on-hand at that position, units
    ARGV[3]  debit id ("" when nothing is to be debited)
    ARGV[4]  units to debit (0 for an increase or no change)
    ARGV[5]  reclaim limit: expired holds reclaimed in this call, at most
    ARGV[6]  holds summed into a state rebuilt here, at most

  Output:
     {1, onHand, reserved, driftCorrected, orphanDebitReleased}   ready (and the debit staged)
     {0, pos}                       Redis is behind: apply entries pos+1..ledger position first
    {-1, onHand, reserved}          the debit would take on-hand below what is reserved (nothing
                                    staged; drift and a leftover debit were still corrected,
                                    which is right under the row lock)
    {-2, holdCount}                 too many holds outlived the state to rebuild it here
    Replies 1 and -1 end with a nested array of the expired holds reclaimed, when any were (see
    withReclaimed in includes/holds).
]]
--- @include "includes/common"
--- @include "includes/holds"
--- @include "includes/projection"

local ledgerPos, ledgerOnHand = tonumber(ARGV[1]), tonumber(ARGV[2])
local debitId, debitUnits = ARGV[3], tonumber(ARGV[4])
if ledgerPos == nil or ledgerPos < 0 or ledgerOnHand == nil or ledgerOnHand < 0 then fail('bad ledger position') end
if debitUnits == nil or debitUnits < 0 or (debitUnits > 0) == (debitId == '') then fail('a debit needs units and an id') end
local pos = tonumber(redis.call('HGET', KEYS[1], 'pos'))
if pos ~= nil and pos > ledgerPos then fail('Redis at position ' .. pos .. ', ahead of the ledger at ' .. ledgerPos .. ' for ' .. KEYS[1]) end
redis.call('DEL', KEYS[3])
if pos == nil then
  local holds = rebuildState(KEYS[1], KEYS[2], ledgerOnHand, ledgerPos, tonumber(ARGV[6]))
  if holds < 0 then return { -2, redis.call('ZCARD', KEYS[2]) } end
  pos = ledgerPos
end
if pos < ledgerPos then return { 0, pos } end

local drift = 0
if tonumber(redis.call('HGET', KEYS[1], 'onHand')) ~= ledgerOnHand then
  redis.call('HSET', KEYS[1], 'onHand', ledgerOnHand)
  drift = 1
end
local orphan = clearOrphanDebit(KEYS[1])
reclaimExpiredHolds(KEYS[1], KEYS[2], nowMs(), tonumber(ARGV[5]))
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved'))
if debitUnits > 0 then
  if ledgerOnHand - debitUnits < reserved then return withReclaimed({ -1, ledgerOnHand, reserved }) end
  redis.call('HSET', KEYS[1], 'debit', debitUnits, 'did', debitId)
end
return withReclaimed({ 1, ledgerOnHand, reserved, drift, orphan })
