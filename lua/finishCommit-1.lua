--[[
  Marks a reservation committed in Redis, after the ledger committed its allocations and they
  were applied to every line's SKU state (applyEntries, which also removed the holds). Fenced:
  only a confirmed reservation at the job's fence changes, so a re-run or a stale worker does
  nothing. The record then expires after the retention period (Postgres answers after that).

  Input:
    KEYS[1]  the bucket of the reservation's record (see includes/record)
    ARGV[1]  reservation id
    ARGV[2]  fence the commit job carries
    ARGV[3]  record retention once committed, milliseconds

  Output:
    {1}           marked committed
    {0, status}   not confirmed at this fence: unchanged ("missing" when Redis lost the record)
]]
--- @include "includes/common"
--- @include "includes/record"

local record = recordLoad(KEYS[1], ARGV[1])
if not record then return { 0, 'missing' } end
if record.s ~= 'confirmed' or record.v ~= tonumber(ARGV[2]) then return { 0, record.s } end
local now = nowMs()
record.s, record.at = 'committed', now
recordSave(KEYS[1], ARGV[1], record)
recordKeepUntilAfterConfirmed(record.b, now + tonumber(ARGV[3]), now)
return { 1 }
