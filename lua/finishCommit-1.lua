--[[
  Marks a reservation committed in Redis, after the ledger committed its allocations and they
  were applied to every line's SKU state (applyEntries, which also removed the holds). Fenced:
  only a confirmed reservation at the job's fence changes, so a re-run or a stale worker does
  nothing. The record then expires after the retention period (Postgres answers after that).

  Input:
    KEYS[1]  reservation record (hash: s, v, ...)
    ARGV[1]  fence the commit job carries
    ARGV[2]  record retention once committed, milliseconds

  Output:
    {1}           marked committed
    {0, status}   not confirmed at this fence: unchanged ("missing" when Redis lost the record)
]]
--- @include "includes/common"

local record = redis.call('HMGET', KEYS[1], 's', 'v')
if not record[1] then return { 0, 'missing' } end
if record[1] ~= 'confirmed' or record[2] ~= ARGV[1] then return { 0, record[1] } end
redis.call('HSET', KEYS[1], 's', 'committed', 'cm', integerString(nowMs()))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return { 1 }
