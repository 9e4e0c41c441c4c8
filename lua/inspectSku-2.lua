--[[
  The reconciler's look at one SKU: reclaims its expired holds (at most `limit`, or only counts
  them in a dry run) and returns its counters, its ledger position and its confirmed holds (for
  the stuck-commit check).

  Input:
    KEYS[1]  SKU state   (hash, see includes/projection)
    KEYS[2]  holds index (zset)
    ARGV[1]  reclaim limit: expired holds reclaimed (or counted) in this call, at most
    ARGV[2]  confirmed holds returned, at most
    ARGV[3]  "1" for a dry run: reclaim nothing

  Output:
    {1, onHand, reserved, pos, debit, expiredHolds, expiredUnits, holdCount, confirmedTruncated, member, ...[, reclaimed]}
        the members are the confirmed holds ("<reservationId>:<quantity>"); confirmedTruncated is 1
        when there were more than asked for; reclaimed (a nested array): see withReclaimed in
        includes/holds
    {-1, holdCount}   SKU state missing from Redis
]]
--- @include "includes/common"
--- @include "includes/holds"

if redis.call('HEXISTS', KEYS[1], 'pos') == 0 then return { -1, redis.call('ZCARD', KEYS[2]) } end
local now = nowMs()
local limit = tonumber(ARGV[1])
local expiredHolds, expiredUnits = 0, 0
if ARGV[3] == '1' then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', integerString(now), 'LIMIT', 0, limit)
  for i = 1, #expired do expiredUnits = expiredUnits + holdQuantity(expired[i]) end
  expiredHolds = #expired
else
  expiredUnits, expiredHolds = reclaimExpiredHolds(KEYS[1], KEYS[2], now, limit)
end
local state = redis.call('HMGET', KEYS[1], 'onHand', 'reserved', 'pos', 'debit')
local confirmedMax = tonumber(ARGV[2])
local confirmed = redis.call('ZRANGEBYSCORE', KEYS[2], '+inf', '+inf', 'LIMIT', 0, confirmedMax + 1)
local truncated = 0
if #confirmed > confirmedMax then
  truncated = 1
  confirmed[#confirmed] = nil
end
local result = { 1, tonumber(state[1]), tonumber(state[2]), tonumber(state[3]), tonumber(state[4] or '0'), expiredHolds, expiredUnits, redis.call('ZCARD', KEYS[2]), truncated }
for i = 1, #confirmed do result[#result + 1] = confirmed[i] end
return withReclaimed(result)
