--[[
  Writes a cart's reservation record, pending, once every slot holds its lines (Redis Cluster:
  the record is the coordinator, in its own slot). Idempotent: an existing record is left as it
  is (a resumed attempt, or a retry after the record was written).

  Input:
    KEYS[1]  reservation record (hash, see createReservation-n)
    ARGV[1]  client id
    ARGV[2]  customer id, "" when none
    ARGV[3]  createdAtMs
    ARGV[4]  expiresAtMs
    ARGV[5]  lines, "SKU:qty,SKU:qty"
    ARGV[6]  retention after the hold expires, ms

  Output:
    {1}   written
    {2}   already there: unchanged
]]
--- @include "includes/common"

if redis.call('EXISTS', KEYS[1]) == 1 then return { 2 } end
if ARGV[5] == '' then fail('a record has at least one line') end
redis.call('HSET', KEYS[1], 's', 'pending', 'c', ARGV[1], 'ca', ARGV[3], 'ex', ARGV[4], 'l', ARGV[5])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'u', ARGV[2]) end
redis.call('PEXPIREAT', KEYS[1], tonumber(ARGV[4]) + tonumber(ARGV[6]))
return { 1 }
