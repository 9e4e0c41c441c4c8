--[[
  Creates a pending reservation: for every line it checks stock and writes a TTL'd hold, all
  lines or none, and it writes the idempotency record in the same atomic step, so no crash can
  leave a hold without its record or a record without its hold.

  Input:
    KEYS[1]          idempotency record (string "<state>|<fingerprint>|<payload>", see beginIdempotent;
                     a reservation's payload is "<reservationId>|<createdAtMs>|<expiresAtMs>")
    KEYS[2]          the bucket of the reservation's record (see includes/record; the id is the field)
    KEYS[1 + 2i]     SKU state of line i   (hash: onHand, debit, reserved, pcl; see includes/projection)
    KEYS[2 + 2i]     holds index of line i (zset: "<reservationId>:<quantity>" -> expiresAt ms)
    KEYS[#KEYS]      with the guards (an odd count of KEYS): the customer's index (see includes/guards)

    ARGV[1]          request fingerprint
    ARGV[2]          reservation id (new, random)
    ARGV[3]          client id
    ARGV[4]          customer id, "" when none
    ARGV[5]          hold ttl, milliseconds
    ARGV[6]          idempotency record ttl, milliseconds
    ARGV[7]          reservation record retention after the hold expires, milliseconds
    ARGV[8]          reclaim limit: expired holds reclaimed per SKU in this call, at most
    ARGV[7 + 2i]     SKU of line i (no duplicates: the caller sums duplicate lines)
    ARGV[8 + 2i]     quantity of line i, units (>= 1)
    ARGV[#ARGV]      with the guards: live reservations a customer may have at most

  Output:
     {1, createdAtMs, expiresAtMs}                 created
     {2, reservationId, createdAtMs, expiresAtMs}  replay: this key already created one
    {-1, sku, requested, available, retryAfterMs, ...}  insufficient stock, per short line;
                                                   retryAfterMs -1 when no pending hold can free it
    {-2}                                           idempotency key used with another request
    {-3, sku, ...}                                 SKUs missing from Redis (unknown or lost)
    {-4, retryAfterMs}                             idempotency key held by a request in flight
    {-5, sku, limit, held}                         the customer's units of sku would pass its limit
    {-6, sku}                                      sku is limited per customer; no customer given
    {-7, activeMax, active}                        the customer has activeMax live reservations
    Replies other than 2, -2 and -4 end with a nested array of the expired holds this call
    reclaimed, when it reclaimed any (see withReclaimed in includes/holds).
]]
--- @include "includes/common"
--- @include "includes/holds"
--- @include "includes/record"
--- @include "includes/guards"

local guarded = #KEYS % 2 == 1
local lineCount = (#KEYS - 2 - (guarded and 1 or 0)) / 2
if lineCount < 1 or lineCount ~= math.floor(lineCount) then fail('KEYS must be 2 + 2 per line (+ 1 with the guards)') end
if #ARGV ~= 8 + 2 * lineCount + (guarded and 1 or 0) then fail('ARGV must be 8 + 2 per line (+ 1 with the guards)') end

local idempotency = redis.call('GET', KEYS[1])
if idempotency then
  local state, fingerprint, payload = string.match(idempotency, '^(%a)|([^|]*)|(.*)$')
  if fingerprint ~= ARGV[1] then return { -2 } end
  if state ~= 'd' then return { -4, redis.call('PTTL', KEYS[1]) } end
  local id, createdAt, expiresAt = string.match(payload, '^([^|]+)|(%d+)|(%d+)$')
  if not id then fail('idempotency record of another kind under ' .. KEYS[1]) end
  return { 2, id, tonumber(createdAt), tonumber(expiresAt) }
end

local reservationId = ARGV[2]
if not recordClientIdOk(ARGV[3]) then fail('a client id with "|"') end
local holdTtlMs = tonumber(ARGV[5])
local reclaimLimit = tonumber(ARGV[8])
local now = nowMs()

-- Every line is checked before anything is held, so a refusal leaves no partial reservation.
-- Reclaiming expired holds is a write, but one that is right whatever this request's outcome.
local lines = {}
for i = 1, lineCount do
  lines[i] = { sku = ARGV[7 + 2 * i], quantity = tonumber(ARGV[8 + 2 * i]), skuKey = KEYS[1 + 2 * i], holdsKey = KEYS[2 + 2 * i] }
end
local missing, short, cursors = checkLines(lines, now, reclaimLimit)
-- The guards before the stock's answer: a request over a cap is refused as such, short or not.
local remember = false
if guarded then
  local refusedByGuard
  refusedByGuard, remember = customerGuard(KEYS[#KEYS], ARGV[4], lines, now, tonumber(ARGV[#ARGV]))
  if refusedByGuard then return withReclaimed(refusedByGuard) end
end
local refused = refusal(missing, short)
if refused then return refused end

local expiresAt = now + holdTtlMs
holdLines(lines, cursors, reservationId, expiresAt)
local encoded = {}
for i, line in ipairs(lines) do encoded[i] = line.sku .. ':' .. line.quantity end

recordSave(KEYS[2], reservationId, { s = 'pending', v = 1, c = ARGV[3], u = ARGV[4] ~= '' and ARGV[4] or nil, ca = now, ex = expiresAt, l = table.concat(encoded, ',') })
recordKeepUntil(KEYS[2], expiresAt + tonumber(ARGV[7]), now)
if remember and ARGV[4] ~= '' then rememberCustomerHold(KEYS[#KEYS], KEYS[2], reservationId, expiresAt, tonumber(ARGV[7])) end
redis.call('SET', KEYS[1], 'd|' .. ARGV[1] .. '|' .. reservationId .. '|' .. integerString(now) .. '|' .. integerString(expiresAt), 'PX', ARGV[6])
return withReclaimed({ 1, now, expiresAt })
