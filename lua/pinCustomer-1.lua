--[[
  A confirm's step for its customer on a Redis Cluster (includes/customer-entries), before the
  cart's holds are pinned: the reservation's entry goes p -> f, so it counts until the commit
  however long past its expiry that comes. A reservation without an entry (made while nothing
  capped it) stays without one, as on one Redis.

  Input:
    KEYS[1]   the customer's entries (hash)
    ARGV[1]   reservation id

  Output:
    {1}    pinned (now, or already)
    {0}    no entry: nothing to count
    {-1}   the entry's expiry has passed: the reservation can no longer be confirmed (its holds
           expire at the same moment); the entry is removed
]]
--- @include "includes/common"
--- @include "includes/customer-entries"

if #ARGV ~= 1 then fail('ARGV must be the reservation id') end
local key, id = KEYS[1], ARGV[1]
local value = redis.call('HGET', key, id)
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
