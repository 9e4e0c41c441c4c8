--[[
  Marks a reservation cancelled in Redis, after the ledger committed its deallocations and they
  were applied to every line's SKU state (applyEntries). Fenced like finishCommit: only a
  committed reservation awaiting cancellation at the job's fence changes.

  Input:
    KEYS[1]  reservation record (hash: s, v, cx, ...)
    ARGV[1]  fence the cancel job carries
    ARGV[2]  record retention, milliseconds

  Output:
    {1}           marked cancelled
    {0, status}   not awaiting cancellation at this fence: unchanged ("missing" when lost)
]]
--- @include "includes/common"

local record = redis.call('HMGET', KEYS[1], 's', 'v', 'cx')
if not record[1] then return { 0, 'missing' } end
if record[1] ~= 'committed' or record[2] ~= ARGV[1] or not record[3] then return { 0, record[1] } end
redis.call('HSET', KEYS[1], 's', 'cancelled', 'cn', integerString(nowMs()))
redis.call('HDEL', KEYS[1], 'cx')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return { 1 }
