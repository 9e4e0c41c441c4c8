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
    KEYS[1]  the bucket of the reservation's record (see includes/record)
    ARGV[1]  reservation id
    ARGV[2]  confirm | expire | release | reject
    ARGV[3]  reject: the fence the commit job carries
    ARGV[4]  reject: record retention, ms

  Output:
     {1, fence, confirmedAtMs}   confirm: confirmed now
     {1, status}                 expire, release, reject: the status set now
     {2, status, fence}          the step does not apply to the record as it is: nothing changed
    {-1}                         no such reservation
]]
--- @include "includes/common"
--- @include "includes/record"

local id = ARGV[1]
local record = recordLoad(KEYS[1], id)
if not record then return { -1 } end
local status, fence = record.s, record.v
local step = ARGV[2]
local now = nowMs()
if step == 'reject' then
  if status ~= 'confirmed' or fence ~= tonumber(ARGV[3]) then return { 2, status, fence } end
  record.s, record.at = 'rejected', now
  recordSave(KEYS[1], id, record)
  recordKeepUntilAfterConfirmed(record.b, now + tonumber(ARGV[4]), now)
  return { 1, 'rejected' }
end
if status ~= 'pending' then return { 2, status, fence } end
if step == 'confirm' then
  record.s, record.v, record.cf = 'confirmed', fence + 1, now
  recordSave(KEYS[1], id, record)
  recordKeepForever(record.b)
  return { 1, fence + 1, now }
end
local newStatus
if step == 'expire' then
  newStatus = 'expired'
elseif step == 'release' then
  newStatus = now >= record.ex and 'expired' or 'released'
else
  fail('settleRecord: confirm, expire, release or reject, got ' .. tostring(step))
end
record.s, record.at = newStatus, now
recordSave(KEYS[1], id, record)
return { 1, newStatus }
