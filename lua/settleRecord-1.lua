--[[
  The record's step of confirming or expiring a cart across hash slots (Redis Cluster), on the
  record's slot. "confirm" runs after every slot pinned the cart's holds: pending -> confirmed
  (fence + 1, confirmedAt, no expiry), even past the hold's expiry, since the units were held
  throughout. "expire" runs when a slot could not pin (a hold gone): pending -> expired, its
  holds given back by the caller slot by slot.

  Input:
    KEYS[1]  reservation record (hash, see createReservation-n)
    ARGV[1]  "confirm" or "expire"

  Output:
     {1, fence, confirmedAtMs}   confirm: confirmed now
     {1}                         expire: expired now
     {2, status, fence}          not pending (confirmed, committed, cancelled, rejected, released,
                                 expired): nothing changed
    {-1}                         no such reservation
]]
--- @include "includes/common"

local record = redis.call('HMGET', KEYS[1], 's', 'v')
local status = record[1]
if not status then return { -1 } end
local fence = tonumber(record[2] or '1')
if status ~= 'pending' then return { 2, status, fence } end
local now = nowMs()
if ARGV[1] == 'expire' then
  redis.call('HSET', KEYS[1], 's', 'expired', 'ra', integerString(now))
  return { 1 }
end
if ARGV[1] ~= 'confirm' then fail('settleRecord: confirm or expire, got ' .. tostring(ARGV[1])) end
redis.call('HSET', KEYS[1], 's', 'confirmed', 'v', fence + 1, 'cf', integerString(now))
redis.call('PERSIST', KEYS[1])
return { 1, fence + 1, now }
