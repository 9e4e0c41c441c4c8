--[[
  Releases a pending reservation and gives its units back. A pending reservation whose hold has
  already run out becomes "expired" instead of "released"; its units come back all the same if
  no reserve call has reclaimed them yet. Releasing again answers with the status it has.

  Input:
    KEYS[1]          reservation record (hash: s, c, u, ca, ex, l, v)
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

local record = redis.call('HMGET', KEYS[1], 's', 'ex', 'l')
local status = record[1]
if not status then return { -1 } end
if status == 'released' or status == 'expired' then return { 2, status } end
if status ~= 'pending' then return { -2, status } end

local lines = recordLines(record[3])
local keys = lineKeys(lines, 2)
local now = nowMs()
local newStatus = 'released'
if now >= tonumber(record[2]) then newStatus = 'expired' end
returnHolds(lines, keys, ARGV[1])
redis.call('HSET', KEYS[1], 's', newStatus, 'ra', integerString(now))
return { 1, newStatus }
