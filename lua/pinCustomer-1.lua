--[[
  A confirm's step for its customer on a Redis Cluster (includes/customer-entries), before the
  cart's holds are pinned: the reservation's entry goes p -> f, so it counts until the commit
  however long past its expiry that comes.

  Input:
    KEYS[1]   the customer's entries (hash)
    ARGV[1]   reservation id
    ARGV[2]   "pin"      the entry as it is: p -> f
              "readmit"  a cart the guards admitted whose entry is gone (a failover, a stalled
                         attempt that forgot it, another primary's clock): counted again, as
                         an admission is, and written as f when it fits
              "ensure"   a confirmed cart's entry written as f whatever is there (a retried
                         confirm, after a failover may have lost the pin)
    ARGV[3]   with readmit and ensure: expiresAt, ms
    ARGV[4]   with readmit and ensure: the cart's lines, "SKU:qty,..." (the SKUs a customer buys)
    ARGV[5]   with readmit: live reservations a customer may have at most (0: no cap)
    ARGV[4+2i], ARGV[5+2i]   with readmit: a limited SKU of the cart and its limit

  Output:
    {1}    pinned (now, or already)
    {0}    pin: no entry
    {-1}   pin: the entry's expiry has passed: the reservation can no longer be confirmed (its
           holds expire at the same moment); the entry is removed
    {-7, activeMax, active} / {-5, sku, limit, held}   readmit: it does not fit (as admitCustomer)
]]
--- @include "includes/common"
--- @include "includes/customer-entries"

local key, id, mode = KEYS[1], ARGV[1], ARGV[2]
if id == nil or id == '' then fail('ARGV must start with the reservation id') end
local value = redis.call('HGET', key, id)

if mode == 'pin' then
  if #ARGV ~= 2 then fail('pin takes the id and the mode') end
  if not value then return { 0 } end
  local state, expiresAt, lines = customerEntryParse(value)
  if state == 'f' then return { 1 } end
  if expiresAt <= nowMs() then
    redis.call('HDEL', key, id)
    return { -1 }
  end
  redis.call('HSET', key, id, 'f|' .. integerString(expiresAt) .. '|' .. lines)
  redis.call('PERSIST', key)
  return { 1 }
end

local expiresAt, encoded = tonumber(ARGV[3]), ARGV[4]
if expiresAt == nil or not customerLinesOk(encoded) then fail(mode .. ' takes an expiry and the lines') end
local confirmed = 'f|' .. integerString(expiresAt) .. '|' .. encoded

if mode == 'ensure' then
  if #ARGV ~= 4 then fail('ensure takes the id, the mode, the expiry and the lines') end
  if value and customerEntryParse(value) == 'f' then return { 1 } end
  redis.call('HSET', key, id, confirmed)
  redis.call('PERSIST', key)
  return { 1 }
end

if mode ~= 'readmit' then fail('the mode must be pin, readmit or ensure') end
if #ARGV < 5 or #ARGV % 2 ~= 1 then fail('readmit takes the id, the mode, the expiry, the lines, the cap and pairs of limits') end
local activeMax = tonumber(ARGV[5])
local limits = customerLimitsFrom(6)
if activeMax == nil or activeMax < 0 then fail('the cap must be >= 0') end
if value and customerEntryParse(value) == 'f' then return { 1 } end
local refused = customerRefusal(customerLiveEntries(key, nowMs()), id, encoded, activeMax, limits)
if refused then return refused end
redis.call('HSET', key, id, confirmed)
redis.call('PERSIST', key)
return { 1 }
