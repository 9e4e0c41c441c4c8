--[[
  The record's step of a cart across hash slots (Redis Cluster), on the record's slot; the holds'
  steps (pinLines, returnLines) run slot by slot around it (lib/reservations/cart-across-slots.ts).
    confirm   after every slot pinned the cart's holds: pending -> confirmed (fence + 1,
              confirmedAt, no expiry), even past the hold's expiry: the units were held throughout
    expire    a slot could not pin (a hold gone): pending -> expired; the caller gives the holds back
    release   pending -> released (expired when past its expiry); the caller gives the holds back
    reject    the ledger refused the allocation: confirmed at this fence -> rejected, kept for the
              retention; the caller gives the holds back

  Input:
    KEYS[1]  reservation record (hash, see createReservation-n)
    ARGV[1]  confirm | expire | release | reject
    ARGV[2]  reject: the fence the commit job carries
    ARGV[3]  reject: record retention, ms

  Output:
     {1, fence, confirmedAtMs}   confirm: confirmed now
     {1, status}                 expire, release, reject: the status set now
     {2, status, fence}          the step does not apply to the record as it is: nothing changed
    {-1}                         no such reservation
]]
--- @include "includes/common"

local record = redis.call('HMGET', KEYS[1], 's', 'v', 'ex')
local status = record[1]
if not status then return { -1 } end
local fence = tonumber(record[2] or '1')
local step = ARGV[1]
local now = nowMs()
if step == 'reject' then
  if status ~= 'confirmed' or record[2] ~= ARGV[2] then return { 2, status, fence } end
  redis.call('HSET', KEYS[1], 's', 'rejected', 'rj', integerString(now))
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return { 1, 'rejected' }
end
if status ~= 'pending' then return { 2, status, fence } end
if step == 'confirm' then
  redis.call('HSET', KEYS[1], 's', 'confirmed', 'v', fence + 1, 'cf', integerString(now))
  redis.call('PERSIST', KEYS[1])
  return { 1, fence + 1, now }
end
local newStatus
if step == 'expire' then
  newStatus = 'expired'
elseif step == 'release' then
  newStatus = now >= tonumber(record[3]) and 'expired' or 'released'
else
  fail('settleRecord: confirm, expire, release or reject, got ' .. tostring(step))
end
redis.call('HSET', KEYS[1], 's', newStatus, 'ra', integerString(now))
return { 1, newStatus }
