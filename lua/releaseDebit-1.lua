--[[
  Releases a pending debit by its id, after the stock change's transaction rolled back. By id, so
  a late or repeated release can never touch another change's debit: when the debit is no longer
  pending (absorbed, released, or the state rebuilt) nothing changes.

  Input:
    KEYS[1]  SKU state (hash, see includes/projection)
    ARGV[1]  debit id

  Output:
    {1, units}   released
    {0}          not pending: unchanged
]]
--- @include "includes/common"
--- @include "includes/holds"
--- @include "includes/projection"

if ARGV[1] == '' then fail('debit id is empty') end
if redis.call('HGET', KEYS[1], 'did') ~= ARGV[1] then return { 0 } end
return { 1, clearOrphanDebit(KEYS[1]) }
