--[[
  Per-SKU hold helpers, reused by every script that touches a SKU's holds. They take the keys of
  one SKU only (its state hash and its holds index, both tagged with the SKU), so a later
  cluster split can run them slot by slot.

  Holds index: a sorted set, member "<reservationId>:<quantity>", score = expiresAt in ms.
  A hold whose score is <= now has expired; confirmed holds carry +inf.

  Audit bookkeeping. While the reconciler audits a SKU's holds (auditHolds-2.lua) the SKU state
  carries `as`, the score up to which the audit has summed the holds, and `ap`, that partial sum.
  Every change to a hold at or below `as` adjusts `ap`, so that when the audit reaches the end its
  sum is exactly what the holds hold at that moment, however long it took in bounded chunks.

  holdQuantity(member)                           the quantity encoded in a holds index member
  auditCursor(skuKey)                            `as`, or false when no audit is running
  auditHoldChange(skuKey, cursor, score, units)  records a hold change of `units` at `score`
  reclaimExpiredHolds(skuKey, holdsKey, now, limit)
    Removes at most `limit` expired holds and gives their units back (reserved -= units).
    Returns the units and the number of holds reclaimed.
  withReclaimed(reply)
    Appends to `reply`, when this call reclaimed holds, the nested array
    {now, member, expiresAt, member, expiresAt, ...} of every hold it reclaimed (at most the
    reclaim limits the caller passed), so the caller can measure how long past its expiry each
    hold came back (the TTL skew) and how long it lived. Returns `reply`.
]]
local reclaimedHolds = {}
local reclaimedAt = 0
local function holdQuantity(member)
  local quantity = tonumber(string.match(member, ':(%d+)$'))
  if quantity == nil or quantity < 1 then fail('hold member without a quantity: ' .. member) end
  return quantity
end

local function auditCursor(skuKey)
  return redis.call('HGET', skuKey, 'as')
end

local function auditHoldChange(skuKey, cursor, score, units)
  if cursor and tonumber(score) <= tonumber(cursor) then redis.call('HINCRBY', skuKey, 'ap', units) end
end

local function reclaimExpiredHolds(skuKey, holdsKey, now, limit)
  local expired = redis.call('ZRANGEBYSCORE', holdsKey, '-inf', integerString(now), 'WITHSCORES', 'LIMIT', 0, limit)
  if #expired == 0 then return 0, 0 end
  local units = 0
  local members = {}
  for i = 1, #expired, 2 do
    units = units + holdQuantity(expired[i])
    members[#members + 1] = expired[i]
  end
  local reserved = tonumber(redis.call('HGET', skuKey, 'reserved') or '0')
  if reserved < units then fail('reserved ' .. reserved .. ' below expired holds ' .. units .. ' on ' .. skuKey) end
  redis.call('ZREM', holdsKey, unpack(members))
  redis.call('HINCRBY', skuKey, 'reserved', -units)
  reclaimedAt = now
  for i = 1, #expired do reclaimedHolds[#reclaimedHolds + 1] = expired[i] end
  local cursor = auditCursor(skuKey)
  if cursor then
    for i = 1, #expired, 2 do auditHoldChange(skuKey, cursor, expired[i + 1], -holdQuantity(expired[i])) end
  end
  return units, #members
end

local function withReclaimed(reply)
  if #reclaimedHolds > 0 then
    local report = { reclaimedAt }
    for i = 1, #reclaimedHolds do report[i + 1] = reclaimedHolds[i] end
    reply[#reply + 1] = report
  end
  return reply
end
