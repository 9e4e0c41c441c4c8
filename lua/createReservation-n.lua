--[[
  Creates pending reservations, one or more in one atomic call (a batch: the API process sends
  the reservations that reach it in one turn of its event loop together, lib/scripts/
  create-reservation.ts). Each is checked and held on its own, in order, as if it were called
  alone (includes/reserve): for every line it checks stock and writes a TTL'd hold, all lines
  or none, with the idempotency record in the same step. The call reads the clock once, and each
  SKU's state and each record bucket's expiry once (the batch's cache), which is where a batch
  saves Redis time.

  Input:
    ARGV[1]            n, the number of reservations (1 .. 64: the caller's bound)
    ARGV[1 + i]        k(i), the number of KEYS of reservation i (2 + 2 per line, + 1 with the guards)
    then, for each reservation i in order, its k(i) KEYS and its k(i) + 6 ARGV values:
    KEYS[1]          idempotency record (string "<state>|<fingerprint>|<payload>", see beginIdempotent;
                     a reservation's payload is "<reservationId>|<createdAtMs>|<expiresAtMs>")
    KEYS[2]          the bucket of the reservation's record (see includes/record; the id is the field)
    KEYS[1 + 2j]     SKU state of line j   (hash: onHand, debit, reserved, pcl; see includes/projection)
    KEYS[2 + 2j]     holds index of line j (zset: "<reservationId>:<quantity>" -> expiresAt ms)
    KEYS[k]          with the guards (an odd k): the customer's index (see includes/guards)

    ARGV[1]          request fingerprint
    ARGV[2]          reservation id (new, random)
    ARGV[3]          client id
    ARGV[4]          customer id, "" when none
    ARGV[5]          hold ttl, milliseconds
    ARGV[6]          idempotency record ttl, milliseconds
    ARGV[7]          reservation record retention after the hold expires, milliseconds
    ARGV[8]          reclaim limit: expired holds this reservation reclaims per SKU, at most (a
                     later reservation of the batch reclaims that SKU again only while the one
                     before took a full chunk)
    ARGV[7 + 2j]     SKU of line j (no duplicates: the caller sums duplicate lines)
    ARGV[8 + 2j]     quantity of line j, units (>= 1)
    ARGV[k + 6]      with the guards: live reservations a customer may have at most

  Output: one reply per reservation, in order, each one of
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
    {-100, message}                                this reservation raised an error (arguments it
                                                   cannot take: before any write; a broken
                                                   invariant: possibly after a reclaim); the
                                                   others went on, reading Redis afresh. Logged
                                                   at warning level in Redis's log.
    Replies other than 2, -2 and -4 end with a nested array of the expired holds this
    reservation reclaimed, when it reclaimed any (see withReclaimed in includes/holds).
]]
--- @include "includes/common"
--- @include "includes/holds"
--- @include "includes/record"
--- @include "includes/guards"
--- @include "includes/reserve"

local count = tonumber(ARGV[1])
if count == nil or count < 1 or count > 64 or count ~= math.floor(count) then fail('ARGV[1] must be 1-64 reservations') end
local keyTotal, argTotal = 0, 1 + count
for i = 1, count do
  local keyCount = tonumber(ARGV[1 + i])
  if keyCount == nil or keyCount < 4 then fail('reservation ' .. i .. ' has too few keys') end
  keyTotal, argTotal = keyTotal + keyCount, argTotal + keyCount + 6
end
if #KEYS ~= keyTotal or #ARGV ~= argTotal then fail('KEYS must be ' .. keyTotal .. ' and ARGV ' .. argTotal .. ' for these reservations') end

local now = nowMs()
local batch = reserveBatch()
local replies = {}
local k, a = 0, 1 + count
for i = 1, count do
  local keyCount = tonumber(ARGV[1 + i])
  holdsCallStart()
  local ok, reply = pcall(reserveOne, KEYS, k, keyCount, ARGV, a, now, batch)
  if not ok then
    local message = type(reply) == 'table' and tostring(reply.err) or tostring(reply)
    -- Redis counts no error for a call that answers: the log keeps what an ASSERT means.
    redis.log(redis.LOG_WARNING, 'stockhold createReservation: reservation ' .. i .. ' of ' .. count .. ' raised: ' .. message)
    -- It may have reclaimed expired holds before it raised (an earlier line's): reported.
    reply = withReclaimed({ -100, message })
    -- What it wrote before it raised is not in the cache: the later ones read Redis afresh.
    batch = reserveBatch()
  end
  replies[i] = reply
  k, a = k + keyCount, a + keyCount + 6
end
return replies
