--[[
  Marks a reservation cancelled in Redis, after the ledger committed its deallocations and they
  were applied to every line's SKU state (applyEntries). Fenced like finishCommit: only a
  committed reservation awaiting cancellation at the job's fence changes.

  Input:
    KEYS[1]  the bucket of the reservation's record (see includes/record)
    ARGV[1]  reservation id
    ARGV[2]  fence the cancel job carries
    ARGV[3]  record retention, milliseconds

  Output:
    {1}           marked cancelled
    {0, status}   not awaiting cancellation at this fence: unchanged ("missing" when lost)
]]
--- @include "includes/common"
--- @include "includes/record"

local record = recordLoad(KEYS[1], ARGV[1])
if not record then return { 0, 'missing' } end
if record.s ~= 'committed' or record.v ~= tonumber(ARGV[2]) or not record.cx then return { 0, record.s } end
local now = nowMs()
record.s, record.at, record.cx = 'cancelled', now, false
recordSave(KEYS[1], ARGV[1], record)
recordKeepUntil(record.b, now + tonumber(ARGV[3]), now)
return { 1 }
