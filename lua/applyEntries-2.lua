--[[
  Applies a SKU's ledger entries to its Redis state, in the ledger's order, each exactly once.
  This is the one way on-hand moves in Redis, whoever calls it: the API after a stock change, the
  worker after a commit or cancel, a stock change or the reconciler catching up. An entry at or
  below `pos` is already in on-hand and is skipped; the next must be pos + 1, else the reply
  says where the gap starts and the caller fills it from the ledger first. On-hand becomes the
  entry's on_hand_after: at the same position Redis and the ledger are equal, by construction.

  Applying an allocation removes the reservation's hold in the same step (reserved and on-hand
  go down together, so available never jumps up in between). An allocation already counted in
  on-hand whose hold is still there (a state rebuilt from the ledger while the commit was in
  flight) only has its hold removed. Applying a decrease absorbs the debit it names.

  Input:
    KEYS[1]  SKU state   (hash: onHand, pos, reserved, debit, did; see includes/projection)
    KEYS[2]  holds index (zset)
    ARGV     six per entry, in ascending position:
             position, delta (signed units), on-hand after it (units), kind ("adjustment",
             "allocation" or "deallocation"), reservation id ("" for an adjustment),
             debit id ("" for none)

  Output:
     {1, pos, onHand, reserved, debit}   every entry applied or already applied
     {0, pos}                            gap: an entry after pos + 1 came first; those before it
                                         were applied
    {-1}                                 SKU state missing: rebuild it from the ledger first
]]
--- @include "includes/common"
--- @include "includes/holds"
--- @include "includes/projection"

if #ARGV == 0 or #ARGV % 6 ~= 0 then fail('ARGV must be 6 per entry') end
-- Every entry is checked before the first write: Redis keeps writes made before an error.
for i = 1, #ARGV, 6 do
  local seq, delta, onHandAfter, kind = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), ARGV[i + 3]
  if seq == nil or seq < 1 or delta == nil or delta == 0 or onHandAfter == nil or onHandAfter < 0 then fail('bad entry at ARGV ' .. i) end
  if kind == 'allocation' and (delta > 0 or ARGV[i + 4] == '') then fail('bad allocation at ARGV ' .. i) end
end
-- A state without a position is missing (or written by a release before positions): rebuild it.
if redis.call('HEXISTS', KEYS[1], 'pos') == 0 then return { -1 } end

-- The hold an allocation removes, if it is still there; checked before the entry writes anything.
local function heldScore(reservationId, quantity)
  local score = redis.call('ZSCORE', KEYS[2], reservationId .. ':' .. quantity)
  if score and tonumber(redis.call('HGET', KEYS[1], 'reserved')) < quantity then fail('reserved below a hold on ' .. KEYS[1]) end
  return score
end

local function removeHold(reservationId, quantity, score)
  local member = reservationId .. ':' .. quantity
  redis.call('ZREM', KEYS[2], member)
  redis.call('HINCRBY', KEYS[1], 'reserved', -quantity)
  auditHoldChange(KEYS[1], auditCursor(KEYS[1]), score, -quantity)
end

local pos = tonumber(redis.call('HGET', KEYS[1], 'pos'))
for i = 1, #ARGV, 6 do
  local seq, delta, onHandAfter, kind = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), ARGV[i + 3]
  local reservationId, debitId = ARGV[i + 4], ARGV[i + 5]
  if seq > pos + 1 then return { 0, pos } end
  local score = false
  if kind == 'allocation' then score = heldScore(reservationId, -delta) end
  if debitId ~= '' and redis.call('HGET', KEYS[1], 'did') == debitId then clearOrphanDebit(KEYS[1]) end
  if seq == pos + 1 then
    pos = seq
    redis.call('HSET', KEYS[1], 'onHand', onHandAfter, 'pos', pos)
  end
  if score then removeHold(reservationId, -delta, score) end
end
local state = redis.call('HMGET', KEYS[1], 'onHand', 'reserved', 'debit')
return { 1, pos, tonumber(state[1]), tonumber(state[2]), tonumber(state[3] or '0') }
