--[[
  A cart's first step for its customer on a Redis Cluster (includes/customer-entries): checks the
  customer's live reservations against the active-holds cap and each limited SKU's per-customer
  limit, and admits the new reservation (a p entry) in the same atomic step, before any of its
  lines is held. A reservation admitted already (a resumed cart) is checked again beside the
  others, against the limits given now (a limit may have changed since the first attempt).

  Input:
    KEYS[1]        the customer's entries (hash)
    ARGV[1]        reservation id
    ARGV[2]        expiresAt, ms (the cart's hold expiry)
    ARGV[3]        live reservations a customer may have at most (0: no cap)
    ARGV[4]        the cart's lines, "SKU:qty,..." (the SKUs a customer buys: stripes summed)
    ARGV[3+2i]     a limited SKU of the cart (one of its lines)
    ARGV[4+2i]     its per-customer limit

  Output:
    {1}                                   admitted
    {2}                                   admitted already, and still fits
    {-7, activeMax, active, id, value, ...}   the customer has activeMax other live reservations
    {-5, sku, limit, held, id, value, ...}    the customer's other live units of sku plus the
                                          cart's would pass its limit
    Refusals end with (at most customerCheckMax, in id order) pairs of the live entries that
    counted, so the caller can find entries whose reservation has ended and forget them.
]]
--- @include "includes/common"
--- @include "includes/customer-entries"

if #ARGV < 4 or #ARGV % 2 ~= 0 then fail('ARGV must be 4 + 2 per limited SKU') end
local key, id, expiresAt, activeMax, encoded = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if id == '' or expiresAt == nil or activeMax == nil or activeMax < 0 then fail('admission needs an id, an expiry and a cap') end
if not customerLinesOk(encoded) then fail('admission needs the lines as SKU:qty,...') end
local limits = customerLimitsFrom(5)
for _, capped in ipairs(limits) do
  if not string.find(',' .. encoded, ',' .. capped.sku .. ':', 1, true) then fail('limited SKU ' .. capped.sku .. ' is not a line of the cart') end
end

local live = customerLiveEntries(key, nowMs())
local admitted = false
for _, entry in ipairs(live) do
  if entry.id == id then admitted = true end
end
local refused = customerRefusal(live, id, encoded, activeMax, limits)
if refused then return refused end
if admitted then return { 2 } end

local value = 'p|' .. integerString(expiresAt) .. '|' .. encoded
redis.call('HSET', key, id, value)
live[#live + 1] = { id = id, state = 'p', ex = expiresAt, l = encoded, value = value }
customerKeepFor(key, live)
return { 1 }
