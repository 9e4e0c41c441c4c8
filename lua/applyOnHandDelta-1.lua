--[[
  Adds units to a SKU's on-hand, fenced by the stock version: it applies only when Redis is at
  `versionFrom`, and moves it to `versionTo`. Used after a ledger commit to apply an increase
  (from v to v+1), and after a failed commit to give back a staged decrease (from v+1 to v).
  Only ever adds units, so it can never take on-hand below what is reserved. Any other version
  means Redis was already rebuilt from the ledger, so doing nothing is right.

  Input:
    KEYS[1]  SKU state (hash: onHand, reserved, version)
    ARGV[1]  units to add (>= 1)
    ARGV[2]  version Redis must be at
    ARGV[3]  version to move to

  Output:
    {1, onHand, reserved}   applied
    {0}                     Redis is at another version, or has no state for the SKU: unchanged
]]
--- @include "includes/common"

local units = tonumber(ARGV[1])
if units == nil or units < 1 then fail('units must be >= 1') end
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[2] then return { 0 } end
local onHand = redis.call('HINCRBY', KEYS[1], 'onHand', units)
redis.call('HINCRBY', KEYS[1], 'ov', 1)
redis.call('HSET', KEYS[1], 'version', ARGV[3])
return { 1, onHand, tonumber(redis.call('HGET', KEYS[1], 'reserved')) }
