--[[
  Releases a pending reservation and gives its units back. A pending reservation whose hold has
  already run out becomes "expired" instead of "released"; its units come back all the same if
  no reserve call has reclaimed them yet. Releasing again answers with the status it has.

  Input:
    KEYS[1]          the bucket of the reservation's record (see includes/record)
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
--- @include "includes/reservations"
--- @include "includes/record"

local record = recordLoad(KEYS[1], ARGV[1])
if not record then return { -1 } end
local status = record.s
if status == 'released' or status == 'expired' then return { 2, status } end
if status ~= 'pending' then return { -2, status } end

local lines = recordLines(record.l)
local keys = lineKeys(lines, 2)
local now = nowMs()
local newStatus = 'released'
if now >= record.ex then newStatus = 'expired' end
returnHolds(lines, keys, ARGV[1])
record.s, record.at = newStatus, now
recordSave(KEYS[1], ARGV[1], record)
return { 1, newStatus }
