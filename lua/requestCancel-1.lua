--[[
  Marks a committed reservation for cancellation and bumps its fence, which the cancel job
  carries and the ledger write checks. When Redis has forgotten the reservation (its record
  expired after the commit), the record is recreated from the ledger's copy first.
  Asking again returns the same fence: a repeated cancel queues the same work.

  Input:
    KEYS[1]  reservation record (hash: s, c, u, ca, ex, l, v, cx)
    ARGV[1]  fence per the ledger
    ARGV[2]  client id        } used only to recreate a forgotten record
    ARGV[3]  customer id, ""  }
    ARGV[4]  createdAt, ms    }
    ARGV[5]  expiresAt, ms    }
    ARGV[6]  lines "SKU:qty,…"}
    ARGV[7]  record retention, milliseconds

  Output:
     {1, fence}      cancellation requested (now or before) at this fence
     {2, fence}      already cancelled
    {-1, status}     not committed in Redis (pending or confirmed): refuse
]]
local record = redis.call('HMGET', KEYS[1], 's', 'v', 'cx')
if not record[1] then
  redis.call('HSET', KEYS[1], 's', 'committed', 'c', ARGV[2], 'ca', ARGV[4], 'ex', ARGV[5], 'l', ARGV[6], 'v', ARGV[1])
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'u', ARGV[3]) end
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  record = { 'committed', ARGV[1], false }
end
if record[1] == 'cancelled' then return { 2, tonumber(record[2]) } end
if record[1] ~= 'committed' then return { -1, record[1] } end
if record[3] then return { 1, tonumber(record[2]) } end
local fence = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'cx', 1)
return { 1, fence }
