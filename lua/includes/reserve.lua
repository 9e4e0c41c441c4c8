--[[
  One reservation of a createReservation call (which carries one or more: a batch). For every
  line it checks stock and writes a TTL'd hold, all lines or none, and it writes the idempotency
  record in the same atomic step, so no crash can leave a hold without its record or a record
  without its hold.

  reserveOne(keys, k, keyCount, args, a, now, batch)
    The reservation's keys are keys[k + 1 .. k + keyCount], its arguments args[a + 1 ..
    a + keyCount + 6] (layouts in lua/createReservation-n.lua). `now` is the call's time, the same
    for every reservation of the batch. `batch` is the call's cache (reserveBatch()): the SKU
    states checkLines read and the record buckets' expiries; what the call's earlier reservations
    wrote is in it. Returns the reservation's reply. Raises (fail) on arguments it cannot take,
    before its first write; a broken invariant can raise after one (a reclaim on an earlier line
    finding `reserved` below the expired holds): the caller then drops the cache.
  reserveBatch()  a new cache for one call
]]
local function reserveBatch()
  return { states = {}, expiries = {} }
end

local function reserveOne(keys, k, keyCount, args, a, now, batch)
  local guarded = keyCount % 2 == 1
  local lineCount = (keyCount - 2 - (guarded and 1 or 0)) / 2
  if lineCount < 1 or lineCount ~= math.floor(lineCount) then fail('a reservation has 2 + 2 keys per line (+ 1 with the guards)') end
  local idempotencyKey, bucket = keys[k + 1], keys[k + 2]
  local fingerprint, reservationId, clientId, customerId = args[a + 1], args[a + 2], args[a + 3], args[a + 4]

  local idempotency = redis.call('GET', idempotencyKey)
  if idempotency then
    local state, stored, payload = string.match(idempotency, '^(%a)|([^|]*)|(.*)$')
    if stored ~= fingerprint then return { -2 } end
    if state ~= 'd' then return { -4, redis.call('PTTL', idempotencyKey) } end
    local id, createdAt, expiresAt = string.match(payload, '^([^|]+)|(%d+)|(%d+)$')
    if not id then fail('idempotency record of another kind under ' .. idempotencyKey) end
    return { 2, id, tonumber(createdAt), tonumber(expiresAt) }
  end

  if not recordClientIdOk(clientId) then fail('a client id with "|"') end
  local holdTtlMs, retentionMs, reclaimLimit = tonumber(args[a + 5]), tonumber(args[a + 7]), tonumber(args[a + 8])
  -- A hold made at the call's `now` must expire after it: the batch's cache takes "nothing more
  -- expired at now" once a reclaim took less than a chunk (lineState).
  if holdTtlMs == nil or holdTtlMs < 1 or retentionMs == nil or retentionMs < 0 or reclaimLimit == nil or reclaimLimit < 1 then
    fail('hold ttl >= 1, retention >= 0 and reclaim limit >= 1 (numbers)')
  end

  -- Every line is checked before anything is held, so a refusal leaves no partial reservation.
  -- Reclaiming expired holds is a write, but one that is right whatever this request's outcome.
  local lines = {}
  for i = 1, lineCount do
    -- pcl is set by checkLines; named here so the table is made at its size once.
    lines[i] = { sku = args[a + 7 + 2 * i], quantity = tonumber(args[a + 8 + 2 * i]), skuKey = keys[k + 1 + 2 * i], holdsKey = keys[k + 2 + 2 * i], pcl = false }
  end
  local missing, short, cursors = checkLines(lines, now, reclaimLimit, batch.states)
  -- The guards before the stock's answer: a request over a cap is refused as such, short or not.
  local remember = false
  if guarded then
    local refusedByGuard
    refusedByGuard, remember = customerGuard(keys[k + keyCount], customerId, lines, now, tonumber(args[a + keyCount + 6]))
    if refusedByGuard then return withReclaimed(refusedByGuard) end
  end
  local refused = refusal(missing, short)
  if refused then return refused end

  local expiresAt = now + holdTtlMs
  holdLines(lines, cursors, reservationId, expiresAt, batch.states)
  local encoded = {}
  for i, line in ipairs(lines) do encoded[i] = line.sku .. ':' .. line.quantity end

  local recordBucket = recordSavePending(bucket, reservationId, now, expiresAt, table.concat(encoded, ','), clientId, customerId)
  recordKeepUntil(recordBucket, expiresAt + retentionMs, now, batch.expiries)
  if remember and customerId ~= '' then rememberCustomerHold(keys[k + keyCount], recordBucket, reservationId, expiresAt, retentionMs) end
  redis.call('SET', idempotencyKey, 'd|' .. fingerprint .. '|' .. reservationId .. '|' .. integerString(now) .. '|' .. integerString(expiresAt), 'PX', args[a + 6])
  return withReclaimed({ 1, now, expiresAt })
end
