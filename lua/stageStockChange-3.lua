--[[
  First Redis step of a stock change, run inside the Postgres transaction that writes the
  ledger entry (which holds the SKU's projection row locked). Redis must never offer more than
  the ledger holds, so:
    - a decrease is applied here, before the ledger commits (checked against what is reserved);
      if the commit then fails, applyOnHandDelta gives it back;
    - an increase is only checked here and applied by applyOnHandDelta after the commit.
  When Redis's stock version differs from the ledger's (Redis lost the SKU, or missed an earlier
  change's second step), on-hand is first resynchronised from the ledger: the ledger is the truth.

  Input:
    KEYS[1]  SKU state   (hash: onHand, reserved, version, ov, ls)
    KEYS[2]  holds index (zset)
    KEYS[3]  unknown-SKU marker (string, see lib/stock/sku-state.ts): deleted, the SKU exists now
    ARGV[1]  delta, units (negative for a decrease, 0 for a no-op set)
    ARGV[2]  on-hand per the ledger before this change, units
    ARGV[3]  stock version per the ledger before this change
    ARGV[4]  stock version after this change
    ARGV[5]  reclaim limit: expired holds reclaimed in this call, at most
    ARGV[6]  id of the SKU's last ledger entry before this change (recorded on a resync)

  Output:
     {1, onHandBefore, reserved, resynced}   accepted; resynced is 1 when on-hand was reset
    {-1, onHandBefore, reserved}             a decrease would take on-hand below what is reserved
    {-2}                                     holds exist without SKU state: refuse to guess
]]
--- @include "includes/common"
--- @include "includes/holds"

redis.call('DEL', KEYS[3])
local delta = tonumber(ARGV[1])
local ledgerOnHand, ledgerVersion, versionAfter = ARGV[2], ARGV[3], ARGV[4]
local state = redis.call('HMGET', KEYS[1], 'onHand', 'reserved', 'version')
local resynced = 0
if not state[1] then
  if redis.call('EXISTS', KEYS[2]) == 1 then return { -2 } end
  redis.call('HSET', KEYS[1], 'onHand', ledgerOnHand, 'reserved', 0, 'version', ledgerVersion, 'ov', 0, 'ls', ARGV[6])
  resynced = 1
elseif state[3] ~= ledgerVersion then
  redis.call('HSET', KEYS[1], 'onHand', ledgerOnHand, 'version', ledgerVersion, 'ls', ARGV[6])
  redis.call('HINCRBY', KEYS[1], 'ov', 1)
  resynced = 1
end

reclaimExpiredHolds(KEYS[1], KEYS[2], nowMs(), tonumber(ARGV[5]))
state = redis.call('HMGET', KEYS[1], 'onHand', 'reserved')
local onHand, reserved = tonumber(state[1]), tonumber(state[2])
if delta < 0 then
  if onHand + delta < reserved then return { -1, onHand, reserved } end
  redis.call('HINCRBY', KEYS[1], 'onHand', delta)
  redis.call('HINCRBY', KEYS[1], 'ov', 1)
  redis.call('HSET', KEYS[1], 'version', versionAfter)
end
return { 1, onHand, reserved, resynced }
