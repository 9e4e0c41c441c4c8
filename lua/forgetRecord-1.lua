--[[
  Forgets a confirmed record that the ledger has decided (committed, cancelled or rejected) while
  it was being moved from the layout before the shared buckets: the job that decided it found
  no record to mark, so Redis would go on saying "confirmed". Reads then fall through to the
  ledger, as for any record past its retention. Fenced: only a record still confirmed, at a fence
  the ledger has reached (a cancel moves the ledger's past the confirm's), goes.

  Input:
    KEYS[1]  the bucket of the reservation's record (see includes/record)
    ARGV[1]  reservation id
    ARGV[2]  the ledger's fence for it

  Output:
    {1}           forgotten
    {0, status}   not confirmed, or at a fence past the ledger's: unchanged ("missing" when there is none)
]]
--- @include "includes/common"
--- @include "includes/record"

local record = recordLoad(KEYS[1], ARGV[1])
if not record then return { 0, 'missing' } end
if record.s ~= 'confirmed' or record.v > tonumber(ARGV[2]) then return { 0, record.s } end
local now = nowMs()
recordKeepUntilAfterConfirmed(record.b, now + 1, now)
redis.call('HDEL', record.b, record.f)
return { 1 }
