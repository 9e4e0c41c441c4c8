--[[
  The Redis side of a cancellation, run by the worker after the ledger transaction that wrote
  the deallocation has committed: the units come back to on-hand. Fenced like the commit. When
  Redis has lost the reservation, a SKU state rebuilt before the deallocation entry (`ls` below
  the entry id) gets the units; one rebuilt after it already has them.

  Input:
    KEYS[1]          reservation record (hash: s, l, v, cx)
    KEYS[1 + i]      SKU state of line i, in the record's line order
    ARGV[1]          fence the cancel job carries
    ARGV[2]          record retention, milliseconds
    ARGV[1 + 2i]     quantity of line i, units (the job's copy of the lines)
    ARGV[2 + 2i]     ledger entry id of line i's deallocation

  Output:
     {1}             applied
     {0, status}     not awaiting cancellation at this fence (done already, or stale): unchanged
     {0, "missing", n}  Redis lost the reservation; n SKU states had on-hand raised
]]
--- @include "includes/common"
--- @include "includes/reservations"

local lineCount = #KEYS - 1
if lineCount < 1 or #ARGV ~= 2 + 2 * lineCount then fail('ARGV must be 2 + 2 per line') end
local record = redis.call('HMGET', KEYS[1], 's', 'v', 'l', 'cx')
if not record[1] then
  local applied = 0
  for i = 1, lineCount do
    local state = redis.call('HMGET', KEYS[1 + i], 'onHand', 'ls')
    if state[1] and state[2] and tonumber(ARGV[2 + 2 * i]) > tonumber(state[2]) then
      redis.call('HINCRBY', KEYS[1 + i], 'onHand', tonumber(ARGV[1 + 2 * i]))
      redis.call('HINCRBY', KEYS[1 + i], 'ov', 1)
      applied = applied + 1
    end
  end
  return { 0, 'missing', applied }
end
if record[1] ~= 'committed' or record[2] ~= ARGV[1] or not record[4] then return { 0, record[1] } end
local lines = recordLines(record[3])
if #KEYS ~= 1 + #lines then fail('KEYS must be 1 + 1 per line') end
for i, line in ipairs(lines) do
  if not string.find(KEYS[1 + i], '{' .. line.sku .. '}', 1, true) then fail('KEYS out of line order at ' .. i) end
end
for i, line in ipairs(lines) do
  if redis.call('EXISTS', KEYS[1 + i]) == 1 then
    redis.call('HINCRBY', KEYS[1 + i], 'onHand', line.quantity)
    redis.call('HINCRBY', KEYS[1 + i], 'ov', 1)
  end
end
redis.call('HSET', KEYS[1], 's', 'cancelled', 'cn', integerString(nowMs()))
redis.call('HDEL', KEYS[1], 'cx')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return { 1 }
