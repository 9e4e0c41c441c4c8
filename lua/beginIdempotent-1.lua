--[[
  Opens an idempotent operation that cannot run as one Redis script (a stock change, which
  writes Postgres). The record is marked running for a bounded time; settleIdempotent stores the
  response or forgets the attempt.

  The record is one string (cheaper than a hash): "<state>|<fingerprint>|<payload>", state r
  (running, empty payload) or d (done). A stored response's payload is "<status>|<body JSON>";
  a reservation's (createReservation) is "<reservationId>|<createdAtMs>|<expiresAtMs>".
  Fingerprints are base64url and never contain "|".

  Input:
    KEYS[1]  idempotency record
    ARGV[1]  request fingerprint
    ARGV[2]  in-flight ttl, milliseconds: how long a crashed attempt blocks its key

  Output:
     {1}                   begun: the caller runs the operation
     {2, status, body}     already done: replay the stored response
    {-2}                   key used with another request
    {-4, retryAfterMs}     another attempt with this key is running
]]
local record = redis.call('GET', KEYS[1])
if record then
  local state, fingerprint, payload = string.match(record, '^(%a)|([^|]*)|(.*)$')
  if fingerprint ~= ARGV[1] then return { -2 } end
  if state ~= 'd' then return { -4, redis.call('PTTL', KEYS[1]) } end
  local status, body = string.match(payload, '^(%d+)|(.*)$')
  if not status then return { -2 } end
  return { 2, tonumber(status), body }
end
redis.call('SET', KEYS[1], 'r|' .. ARGV[1] .. '|', 'PX', ARGV[2])
return { 1 }
