--[[
  Per-SKU hold helpers, reused by every script that touches a SKU's holds. They take the keys of
  one SKU only (its state hash and its holds index, both tagged with the SKU), so a later
  cluster split can run them slot by slot.

  Holds index: a sorted set, member "<reservationId>:<quantity>", score = expiresAt in ms.
  A hold whose score is <= now has expired; confirmed holds (a later issue) carry +inf.

  reclaimExpiredHolds(skuKey, holdsKey, now, limit)
    Removes at most `limit` expired holds and gives their units back (reserved -= units).
    Returns the units reclaimed.
  holdQuantity(member)
    The quantity encoded in a holds index member.
]]
local function holdQuantity(member)
  local quantity = tonumber(string.match(member, ':(%d+)$'))
  if quantity == nil or quantity < 1 then fail('hold member without a quantity: ' .. member) end
  return quantity
end

local function reclaimExpiredHolds(skuKey, holdsKey, now, limit)
  local expired = redis.call('ZRANGEBYSCORE', holdsKey, '-inf', integerString(now), 'LIMIT', 0, limit)
  if #expired == 0 then return 0 end
  local units = 0
  for i = 1, #expired do
    units = units + holdQuantity(expired[i])
  end
  local reserved = tonumber(redis.call('HGET', skuKey, 'reserved') or '0')
  if reserved < units then fail('reserved ' .. reserved .. ' below expired holds ' .. units .. ' on ' .. skuKey) end
  redis.call('ZREM', holdsKey, unpack(expired))
  redis.call('HINCRBY', skuKey, 'reserved', -units)
  return units
end
