--[[
  Opens a cart that spans hash slots (Redis Cluster; docs/design.md, "Redis Cluster"), on its
  idempotency record's slot: the coordinator's first step. A new cart is marked "holding" with its
  reservation id, expiry and an attempt lease; the same key and request again, while that
  attempt's lease runs, is told to retry later (one attempt at a time: two attempts of one cart
  interleaving across slots could return holds the other counts on); after the lease, the attempt
  is presumed dead and this one resumes the same cart (never a second one) while its holds can
  still be live; once done, it replays.

  The record is the idempotency string "<state>|<fingerprint>|<reservationId>|<createdAtMs>|<expiresAtMs>[|<leaseUntilMs>]",
  state h (holding: lines being held slot by slot; with the lease) or d (done: the same payload
  createReservation writes, so a replay reads the same either way).

  Input:
    KEYS[1]  idempotency record
    ARGV[1]  request fingerprint
    ARGV[2]  reservation id for a new cart
    ARGV[3]  hold ttl, ms
    ARGV[4]  marker ttl, ms (at least the hold ttl: a retry can resume while the holds live)
    ARGV[5]  attempt lease, ms: how long an attempt is presumed alive

  Output:
    {1, reservationId, createdAtMs, expiresAtMs}   new: hold the lines, then open the record
    {3, reservationId, createdAtMs, expiresAtMs}   resume: an earlier attempt of this request
    {2, reservationId, createdAtMs, expiresAtMs}   done: replay
    {-2}                                           the key was used with another request
    {-4, retryAfterMs}                             an attempt of this request is running
]]
--- @include "includes/common"

local holdTtlMs, markerTtlMs, leaseMs = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if holdTtlMs == nil or holdTtlMs < 1 or markerTtlMs == nil or markerTtlMs < holdTtlMs then fail('the marker must outlive the hold ttl') end
if leaseMs == nil or leaseMs < 1 then fail('an attempt lease is at least 1 ms') end
local now = nowMs()
local record = redis.call('GET', KEYS[1])
if record then
  local state, fingerprint, payload = string.match(record, '^(%a)|([^|]*)|(.*)$')
  if fingerprint ~= ARGV[1] then return { -2 } end
  local id, createdAt, expiresAt, leaseUntil = string.match(payload, '^([^|]+)|(%d+)|(%d+)|?(%d*)$')
  if not id then return { -2 } end
  if state == 'd' then return { 2, id, tonumber(createdAt), tonumber(expiresAt) } end
  if state ~= 'h' then return { -2 } end
  local lease = tonumber(leaseUntil) or 0
  if now < lease then return { -4, lease - now } end
  -- An attempt presumed dead: take its lease and resume the cart while its holds can still be
  -- live; past its expiry its holds are being reclaimed, so start the cart afresh.
  if now < tonumber(expiresAt) then
    redis.call('SET', KEYS[1], 'h|' .. ARGV[1] .. '|' .. id .. '|' .. createdAt .. '|' .. expiresAt .. '|' .. integerString(now + leaseMs), 'KEEPTTL')
    return { 3, id, tonumber(createdAt), tonumber(expiresAt) }
  end
end
local expiresAt = now + holdTtlMs
redis.call('SET', KEYS[1], 'h|' .. ARGV[1] .. '|' .. ARGV[2] .. '|' .. integerString(now) .. '|' .. integerString(expiresAt) .. '|' .. integerString(now + leaseMs), 'PX', markerTtlMs)
return { 1, ARGV[2], now, expiresAt }
