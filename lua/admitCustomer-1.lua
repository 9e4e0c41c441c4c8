--[[
  A cart's first step for its customer on a Redis Cluster (includes/customer-entries): checks the
  customer's live reservations against the active-holds cap and each limited SKU's per-customer
  limit, and admits the new reservation (a p entry) in the same atomic step, before any of its
  lines is held. A reservation admitted already (a resumed cart) is admitted again at once.

  Input:
    KEYS[1]        the customer's entries (hash)
    ARGV[1]        reservation id
    ARGV[2]        expiresAt, ms (the cart's hold expiry)
    ARGV[3]        live reservations a customer may have at most (0: no cap)
    ARGV[4]        the cart's lines, "SKU:qty,..." (the SKUs a customer buys: stripes summed)
    ARGV[3+2i]     a limited SKU of the cart
    ARGV[4+2i]     its per-customer limit

  Output:
    {1}                                   admitted
    {2}                                   admitted already
    {-7, activeMax, active, id, value, ...}   the customer has activeMax live reservations
    {-5, sku, limit, held, id, value, ...}    the customer's live units of sku plus the cart's
                                          would pass its limit
    Refusals end with (at most customerCheckMax, in id order) pairs of the live entries that
    counted, so the caller can find entries whose reservation has ended and forget them.
]]
--- @include "includes/common"
--- @include "includes/customer-entries"

if #ARGV < 4 or #ARGV % 2 ~= 0 then fail('ARGV must be 4 + 2 per limited SKU') end
local key, id, expiresAt, activeMax, encoded = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if id == '' or expiresAt == nil or activeMax == nil or activeMax < 0 then fail('admission needs an id, an expiry and a cap') end
local customerCheckMax = 16

local limits = {}
for i = 5, #ARGV, 2 do
  local limit = tonumber(ARGV[i + 1])
  if limit == nil or limit < 1 then fail('a per-customer limit must be >= 1 for ' .. ARGV[i]) end
  limits[#limits + 1] = { sku = ARGV[i], limit = limit }
end

local now = nowMs()
local live = customerLiveEntries(key, now)
for _, entry in ipairs(live) do
  if entry.id == id then return { 2 } end
end

local function refused(reply, counted)
  table.sort(counted, function(a, b) return a.id < b.id end)
  for i = 1, math.min(#counted, customerCheckMax) do
    reply[#reply + 1] = counted[i].id
    reply[#reply + 1] = counted[i].value
  end
  return reply
end

if #live >= customerEntriesMax then return refused({ -7, customerEntriesMax, #live }, live) end
if activeMax > 0 and #live >= activeMax then return refused({ -7, activeMax, #live }, live) end

local requested = {}
for sku, quantity in string.gmatch(encoded, '([^:,]+):(%d+)') do requested[sku] = (requested[sku] or 0) + tonumber(quantity) end
for _, capped in ipairs(limits) do
  local sku, limit = capped.sku, capped.limit
  local held, counted = 0, {}
  for _, entry in ipairs(live) do
    local units = 0
    for lineSku, quantity in string.gmatch(entry.l, '([^:,]+):(%d+)') do
      if lineSku == sku then units = units + tonumber(quantity) end
    end
    if units > 0 then
      held = held + units
      counted[#counted + 1] = entry
    end
  end
  if held + (requested[sku] or 0) > limit then return refused({ -5, sku, limit, held }, counted) end
end

local value = 'p|' .. integerString(expiresAt) .. '|' .. encoded
redis.call('HSET', key, id, value)
live[#live + 1] = { id = id, state = 'p', ex = expiresAt, l = encoded, value = value }
customerKeepFor(key, live)
return { 1 }
