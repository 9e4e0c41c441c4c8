--[[
  Moves one reservation record of the layout before the shared buckets (a hash per reservation,
  `res:{<id>}`) into its bucket: lib/reservations/legacy-records.ts reads the old hash and passes
  its fields here. Idempotent: a record already in the bucket is left as it is.

  Input:
    KEYS[1]   the bucket of the reservation's record (see includes/record)
    ARGV[1]   reservation id
    ARGV[2]   status (s)         ARGV[3]  client id (c)      ARGV[4]  customer id (u), "" when none
    ARGV[5]   createdAt ms (ca)  ARGV[6]  expiresAt ms (ex)  ARGV[7]  lines (l)
    ARGV[8]   fence (v, "" = 1)  ARGV[9]  confirmedAt ms (cf, "" when none)
    ARGV[10]  when it was released, expired, committed, cancelled or rejected (ra, cm, cn, rj; "" when none)
    ARGV[11]  "1" when a cancel was requested (cx), else ""
    ARGV[12]  how long the old key had left, ms (its PTTL; ignored for a confirmed record, kept
              until the ledger has it)

  Output:
    {1}   imported
    {2}   already in the bucket: unchanged
]]
--- @include "includes/common"
--- @include "includes/record"

local id = ARGV[1]
if recordFind(KEYS[1], id) then return { 2 } end
if not recordStatusCode[ARGV[2]] then fail('unknown status ' .. ARGV[2]) end
if not recordClientIdOk(ARGV[3]) then fail('a client id with "|"') end
local keepMs = tonumber(ARGV[12])
if ARGV[2] ~= 'confirmed' and (keepMs == nil or keepMs < 1) then fail('a record that is not confirmed needs its time left') end
local now = nowMs()
local record = {
  s = ARGV[2], c = ARGV[3], u = ARGV[4] ~= '' and ARGV[4] or nil, ca = tonumber(ARGV[5]), ex = tonumber(ARGV[6]), l = ARGV[7],
  v = ARGV[8] ~= '' and tonumber(ARGV[8]) or 1, cf = ARGV[9] ~= '' and tonumber(ARGV[9]) or nil,
  at = ARGV[10] ~= '' and tonumber(ARGV[10]) or nil, cx = ARGV[11] == '1',
}
recordSave(KEYS[1], id, record)
if ARGV[2] == 'confirmed' then
  recordKeepForever(record.b)
else
  recordKeepUntil(record.b, now + keepMs, now)
end
return { 1 }
