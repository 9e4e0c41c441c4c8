--[[
  Closes what beginIdempotent opened, if this attempt still owns it (same fingerprint, running).

  Input:
    KEYS[1]  idempotency record (string, see beginIdempotent)
    ARGV[1]  request fingerprint
    ARGV[2]  "store" (keep the response for replays) or "forget" (let the key be used again)
    ARGV[3]  HTTP status to store (store only)
    ARGV[4]  response body to store, JSON (store only)
    ARGV[5]  record ttl, milliseconds (store only)

  Output:
    {1}   settled
    {0}   the record is gone or not ours (its in-flight ttl ran out): nothing changed
]]
if redis.call('GET', KEYS[1]) ~= 'r|' .. ARGV[1] .. '|' then return { 0 } end
if ARGV[2] == 'forget' then
  redis.call('DEL', KEYS[1])
  return { 1 }
end
redis.call('SET', KEYS[1], 'd|' .. ARGV[1] .. '|' .. ARGV[3] .. '|' .. ARGV[4], 'PX', ARGV[5])
return { 1 }
