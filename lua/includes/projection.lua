--[[
  The SKU state as a projection of the ledger. Fields of the state hash:
    onHand    units on hand per the ledger at position `pos`
    pos       the SKU's ledger position this state reflects: entries 1..pos are applied
    reserved  units in live holds (pending and confirmed)
    debit     units of the one pending debit (a decrease staged before its ledger COMMIT), or 0
    did       that debit's id, or absent
  available = onHand - debit - reserved. Only applyEntries moves onHand (and pos); a debit is
  staged by prepareStockChange, absorbed when its entry is applied, released by its id.

  A state without `pos` is missing: either Redis lost it, or it was written by a release before
  ledger positions (fields version, ov, ls), which is rebuilt on first touch like a lost one.

  rebuildState(skuKey, holdsKey, onHand, pos, holdsMax)
    Creates the state from the ledger at `pos` (over a pre-position state, dropping its fields). Holds that outlived the state (Redis lost only
    part of the SKU) are summed into reserved, so they keep their units. Returns the number of
    holds, or -1 (and creates nothing) when there are more than holdsMax of them.
  clearOrphanDebit(skuKey)
    Drops a pending debit. Only for callers that hold the ledger row so that no stock change can
    be in flight (every committed entry is applied, so what is left never reached the ledger).
    Returns the units released.
  available(skuKey)   onHand - debit - reserved
]]
local function rebuildState(skuKey, holdsKey, onHand, pos, holdsMax)
  local members = redis.call('ZRANGE', holdsKey, 0, holdsMax)
  if #members > holdsMax then return -1 end
  local reserved = 0
  for i = 1, #members do reserved = reserved + holdQuantity(members[i]) end
  redis.call('HSET', skuKey, 'onHand', onHand, 'pos', pos, 'reserved', reserved, 'debit', 0)
  redis.call('HDEL', skuKey, 'did', 'version', 'ov', 'ls')
  return #members
end

local function clearOrphanDebit(skuKey)
  local debit = tonumber(redis.call('HGET', skuKey, 'debit') or '0')
  if debit == 0 and redis.call('HEXISTS', skuKey, 'did') == 0 then return 0 end
  redis.call('HSET', skuKey, 'debit', 0)
  redis.call('HDEL', skuKey, 'did')
  return debit
end

local function available(skuKey)
  local state = redis.call('HMGET', skuKey, 'onHand', 'debit', 'reserved')
  return tonumber(state[1]) - tonumber(state[2] or '0') - tonumber(state[3])
end
