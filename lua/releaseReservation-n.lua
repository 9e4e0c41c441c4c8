--[[
  Releases a pending reservation and gives its units back. A pending reservation whose hold has
  already run out becomes "expired" instead of "released"; its units come back all the same if
  no reserve call has reclaimed them yet. Releasing again answers with the status it has.

  Input:
    KEYS[1]          reservation record (hash: s, c, u, ca, ex, l)
    KEYS[2i]         SKU state of line i, in the record's line order
    KEYS[2i + 1]     holds index of line i
    ARGV[1]          reservation id (names its members in the holds indexes)

  Output:
     {1, status}     released now; status is "released" or "expired"
     {2, status}     already "released" or "expired": nothing changed
    {-1}             no such reservation
    {-2, status}     the reservation is past pending (confirmed, committed, ...): not releasable
]]
--- @include "includes/common"
--- @include "includes/holds"

local record = redis.call('HMGET', KEYS[1], 's', 'ex', 'l')
local status = record[1]
if not status then return { -1 } end
if status == 'released' or status == 'expired' then return { 2, status } end
if status ~= 'pending' then return { -2, status } end

local lines = {}
for sku, quantity in string.gmatch(record[3], '([^:,]+):(%d+)') do
  lines[#lines + 1] = { sku = sku, quantity = tonumber(quantity) }
end
if #KEYS ~= 1 + 2 * #lines then fail('KEYS must be 1 + 2 per line of ' .. KEYS[1]) end

local reservationId = ARGV[1]
local now = nowMs()
local newStatus = 'released'
if now >= tonumber(record[2]) then newStatus = 'expired' end

-- Check every line before the first write: Redis keeps writes made before an error.
local returned = {}
for i, line in ipairs(lines) do
  local skuKey, holdsKey = KEYS[2 * i], KEYS[2 * i + 1]
  if not string.find(skuKey, '{' .. line.sku .. '}', 1, true) then fail('KEYS out of line order at ' .. i) end
  local member = reservationId .. ':' .. line.quantity
  if redis.call('ZSCORE', holdsKey, member) then
    local reserved = tonumber(redis.call('HGET', skuKey, 'reserved') or '0')
    if reserved < line.quantity then fail('reserved below a live hold on ' .. skuKey) end
    returned[#returned + 1] = { skuKey = skuKey, holdsKey = holdsKey, member = member, quantity = line.quantity }
  end
end
for _, hold in ipairs(returned) do
  redis.call('ZREM', hold.holdsKey, hold.member)
  redis.call('HINCRBY', hold.skuKey, 'reserved', -hold.quantity)
end
redis.call('HSET', KEYS[1], 's', newStatus, 'ra', integerString(now))
return { 1, newStatus }
