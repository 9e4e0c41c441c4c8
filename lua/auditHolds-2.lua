--[[
  Checks a SKU's reserved counter against its holds, in bounded chunks: each call sums at most
  `chunkMax` holds (plus the holds sharing the last score, at most `tieMax`), in score order, and
  leaves a cursor (`as`) and partial sum (`ap`) in the SKU state. Every script that adds, removes
  or moves a hold at or below the cursor adjusts `ap` (includes/holds.lua), so when the audit
  reaches the end its sum is exactly the holds at that moment, and the drift it finds
  (reserved - sum) is exact. Reservations, releases and commits move reserved and the holds
  together and never change that drift, so the correction is a delta, applied in the same
  atomic step, with no compare-and-set for traffic to defeat.

  Input:
    KEYS[1]  SKU state   (hash: reserved, ai, as, ap)
    KEYS[2]  holds index (zset)
    ARGV[1]  audit id (the reconciliation run)
    ARGV[2]  "start" (begins, taking over any earlier audit) or "next"
    ARGV[3]  chunk size: holds summed per call, at most
    ARGV[4]  ties: holds sharing the chunk's last score taken in, at most
    ARGV[5]  "1" to correct the drift found, "0" to only report it (dry run)

  Output:
     {1, summed}                   chunk done, more to come: call again with "next"
     {2, reservedBefore, drift}    finished; drift = reserved - sum of holds (corrected if asked)
    {-1}                           another audit took over (or the SKU state is gone)
    {-2}                           more than `tieMax` holds share one score: audit abandoned
]]
--- @include "includes/common"
--- @include "includes/holds"

local chunkMax, tieMax = tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', KEYS[1]) == 0 then return { -1 } end
if ARGV[2] == 'start' then
  redis.call('HDEL', KEYS[1], 'as')
  redis.call('HSET', KEYS[1], 'ai', ARGV[1], 'ap', 0)
elseif redis.call('HGET', KEYS[1], 'ai') ~= ARGV[1] then
  return { -1 }
end

local cursor = redis.call('HGET', KEYS[1], 'as')
local items = {}
if cursor ~= 'inf' then
  local from = '-inf'
  if cursor then from = '(' .. cursor end
  items = redis.call('ZRANGEBYSCORE', KEYS[2], from, '+inf', 'WITHSCORES', 'LIMIT', 0, chunkMax)
end

if #items == 0 then
  local state = redis.call('HMGET', KEYS[1], 'reserved', 'ap')
  local reserved, sum = tonumber(state[1]), tonumber(state[2])
  local drift = reserved - sum
  if sum < 0 then fail('audit sum below zero on ' .. KEYS[1]) end
  redis.call('HDEL', KEYS[1], 'ai', 'as', 'ap')
  if drift ~= 0 and ARGV[5] == '1' then redis.call('HINCRBY', KEYS[1], 'reserved', -drift) end
  return { 2, reserved, drift }
end

local lastScore = items[#items]
if #items == 2 * chunkMax then
  -- Holds with the chunk's last score may go on past the limit: take them all, or give up.
  local ties = redis.call('ZRANGEBYSCORE', KEYS[2], lastScore, lastScore, 'LIMIT', 0, tieMax + 1)
  if #ties > tieMax then
    redis.call('HDEL', KEYS[1], 'ai', 'as', 'ap')
    return { -2 }
  end
  local kept = {}
  for i = 1, #items, 2 do
    if items[i + 1] ~= lastScore then
      kept[#kept + 1] = items[i]
      kept[#kept + 1] = items[i + 1]
    end
  end
  for i = 1, #ties do
    kept[#kept + 1] = ties[i]
    kept[#kept + 1] = lastScore
  end
  items = kept
end

local sum = 0
for i = 1, #items, 2 do sum = sum + holdQuantity(items[i]) end
redis.call('HINCRBY', KEYS[1], 'ap', sum)
redis.call('HSET', KEYS[1], 'as', lastScore)
return { 1, #items / 2 }
