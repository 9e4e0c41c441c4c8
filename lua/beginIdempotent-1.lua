--[[
  Opens an idempotent operation that cannot run as one Redis script (a stock change, which
  writes Postgres). The record is marked running for a bounded time; settleIdempotent stores the
  response or forgets the attempt.

  Input:
    KEYS[1]  idempotency record (hash: fp, st, code, body | rid, ca, ex)
    ARGV[1]  request fingerprint
    ARGV[2]  in-flight ttl, milliseconds: how long a crashed attempt blocks its key

  Output:
     {1}                   begun: the caller runs the operation
     {2, status, body}     already done: replay the stored response
    {-2}                   key used with another request
    {-4, retryAfterMs}     another attempt with this key is running
]]
local record = redis.call('HMGET', KEYS[1], 'fp', 'st', 'code', 'body')
if record[1] then
  if record[1] ~= ARGV[1] then return { -2 } end
  if record[2] ~= 'done' then return { -4, redis.call('PTTL', KEYS[1]) } end
  return { 2, tonumber(record[3]), record[4] }
end
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'st', 'running')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return { 1 }
