--[[
  Marks a committed reservation for cancellation and bumps its fence, which the cancel job
  carries and the ledger write checks. When Redis has forgotten the reservation (its record
  expired after the commit), the record is recreated from the ledger's copy first.
  Asking again returns the same fence: a repeated cancel queues the same work.

  Input:
    KEYS[1]  the bucket of the reservation's record (see includes/record)
    ARGV[1]  reservation id
    ARGV[2]  fence per the ledger
    ARGV[3]  client id        } used only to recreate a forgotten record
    ARGV[4]  customer id, ""  }
    ARGV[5]  createdAt, ms    }
    ARGV[6]  expiresAt, ms    }
    ARGV[7]  lines "SKU:qty,…"}
    ARGV[8]  record retention, milliseconds

  Output:
     {1, fence}      cancellation requested (now or before) at this fence
     {2, fence}      already cancelled
    {-1, status}     not committed in Redis (pending or confirmed): refuse
]]
--- @include "includes/common"
--- @include "includes/record"

local id = ARGV[1]
local record = recordLoad(KEYS[1], id)
if not record then
  record = {
    s = 'committed', v = tonumber(ARGV[2]), c = ARGV[3], u = ARGV[4] ~= '' and ARGV[4] or nil,
    ca = tonumber(ARGV[5]), ex = tonumber(ARGV[6]), l = ARGV[7], cx = false,
  }
  recordSave(KEYS[1], id, record)
  local now = nowMs()
  recordKeepUntil(record.b, now + tonumber(ARGV[8]), now)
end
if record.s == 'cancelled' then return { 2, record.v } end
if record.s ~= 'committed' then return { -1, record.s } end
if record.cx then return { 1, record.v } end
record.v, record.cx = record.v + 1, true
recordSave(KEYS[1], id, record)
return { 1, record.v }
