--[[
  Per-SKU hold helpers, reused by every script that touches a SKU's holds. They take the keys of
  one SKU only (its state hash and its holds index, both tagged with the SKU), so a later
  cluster split can run them slot by slot.

  Holds index: a sorted set, member "<reservationId>:<quantity>", score = expiresAt in ms.
  A hold whose score is <= now has expired; confirmed holds carry +inf.

  Audit bookkeeping. While the reconciler audits a SKU's holds (auditHolds-2.lua) the SKU state
  carries `as`, the score up to which the audit has summed the holds, and `ap`, that partial sum.
  Every change to a hold at or below `as` adjusts `ap`, so that when the audit reaches the end its
  sum is exactly what the holds hold at that moment, however long it took in bounded chunks.

  holdQuantity(member)                           the quantity encoded in a holds index member
  auditCursor(skuKey)                            `as`, or false when no audit is running
  auditHoldChange(skuKey, cursor, score, units)  records a hold change of `units` at `score`
  reclaimExpiredHolds(skuKey, holdsKey, now, limit)
    Removes at most `limit` expired holds and gives their units back (reserved -= units).
    Returns the units and the number of holds reclaimed.
    (Times go to redis.call as numbers: Redis writes a number argument as "%.17g", so a time in
    milliseconds arrives as a plain integer; checked in test/lua-scripts.test.ts.)
  checkLines(lines, now, reclaimLimit, states)
    For lines {sku, quantity, skuKey, holdsKey}: reclaims each SKU's expired holds (bounded), then
    checks every line against onHand - debit - reserved, and notes the SKU's per-customer limit
    (state field `pcl`, see includes/guards) as line.pcl. Writes nothing else. Returns `missing`
    (SKUs without state, nil when none), `short` (flat: sku, requested, available, retryAfterMs
    per short line; retryAfterMs -1 when no pending hold can free it; nil when none) and each
    line's audit cursor. `states` (optional): a cache of SKU states for one call (lineState).
  holdLines(lines, cursors, reservationId, expiresAt, states)
    Holds every line: reserved += quantity, member "<reservationId>:<quantity>" at expiresAt.
    Only after checkLines found nothing missing or short, in the same script (and with the same
    `states`, which it keeps up to date).
  refusal(missing, short)
    The reply for what checkLines found: {-3, sku, ...} for missing SKUs, else {-1, ...} for short
    lines (each with the reclaim report), or nil when neither.
  withReclaimed(reply)
    Appends to `reply`, when this call reclaimed holds (in createReservation: this reservation,
    which starts with holdsCallStart() as each reservation of the batch does), the nested array
    {now, member, expiresAt, member, expiresAt, ...} of every hold it reclaimed (at most the
    reclaim limits the caller passed), so the caller can measure how long past its expiry each
    hold came back (the TTL skew) and how long it lived. Returns `reply`.
]]
-- What this call reclaimed (withReclaimed). A library function keeps its includes' locals from
-- one call to the next: every function that includes this file starts with holdsCallStart()
-- (createReservation again before each reservation of its batch).
-- (nil until a reclaim: most calls reclaim nothing, and make no table for it.)
local reclaimedHolds = nil
local reclaimedAt = 0
local function holdsCallStart()
  reclaimedHolds = nil
  reclaimedAt = 0
end
local function holdQuantity(member)
  local quantity = tonumber(string.match(member, ':(%d+)$'))
  if quantity == nil or quantity < 1 then fail('hold member without a quantity: ' .. member) end
  return quantity
end

local function auditCursor(skuKey)
  return redis.call('HGET', skuKey, 'as')
end

local function auditHoldChange(skuKey, cursor, score, units)
  if cursor and tonumber(score) <= tonumber(cursor) then redis.call('HINCRBY', skuKey, 'ap', units) end
end

local function reclaimExpiredHolds(skuKey, holdsKey, now, limit)
  local expired = redis.call('ZRANGEBYSCORE', holdsKey, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
  if #expired == 0 then return 0, 0 end
  local units = 0
  local members = {}
  for i = 1, #expired, 2 do
    units = units + holdQuantity(expired[i])
    members[#members + 1] = expired[i]
  end
  local reserved = tonumber(redis.call('HGET', skuKey, 'reserved') or '0')
  if reserved < units then fail('reserved ' .. reserved .. ' below expired holds ' .. units .. ' on ' .. skuKey) end
  redis.call('ZREM', holdsKey, unpack(members))
  redis.call('HINCRBY', skuKey, 'reserved', -units)
  reclaimedAt = now
  reclaimedHolds = reclaimedHolds or {}
  for i = 1, #expired do reclaimedHolds[#reclaimedHolds + 1] = expired[i] end
  local cursor = auditCursor(skuKey)
  if cursor then
    for i = 1, #expired, 2 do auditHoldChange(skuKey, cursor, expired[i + 1], -holdQuantity(expired[i])) end
  end
  return units, #members
end

local function withReclaimed(reply)
  if reclaimedHolds then
    local report = { reclaimedAt }
    for i = 1, #reclaimedHolds do report[i + 1] = reclaimedHolds[i] end
    reply[#reply + 1] = report
  end
  return reply
end

-- One SKU's state as checkLines needs it, its expired holds reclaimed (bounded). With `states`
-- (a cache by state key, for one call) it is read once per call: later lines and reservations of
-- the call take it from there, with what the call's own holds added (holdLines) and reclaiming
-- again only while the last reclaim took a full chunk.
local function lineState(line, now, reclaimLimit, states)
  local state = states and states[line.skuKey]
  if state == nil then
    local fields = redis.call('HMGET', line.skuKey, 'onHand', 'reserved', 'as', 'debit', 'pos', 'pcl')
    state = { present = fields[5] and true or false, cursor = fields[3], pcl = fields[6], more = true }
    -- A pending debit is a decrease already in effect: those units are not on offer.
    if state.present then state.onHand, state.reserved = tonumber(fields[1]) - tonumber(fields[4] or '0'), tonumber(fields[2]) end
    if states then states[line.skuKey] = state end
  end
  if state.present and state.more then
    local units, count = reclaimExpiredHolds(line.skuKey, line.holdsKey, now, reclaimLimit)
    state.reserved = state.reserved - units
    state.more = count >= reclaimLimit
  end
  return state
end

local function checkLines(lines, now, reclaimLimit, states)
  -- Every line is validated before the first reclaim (a write): a cart refused as malformed
  -- has changed nothing.
  if #lines > 1 then
    local seen = {}
    for _, line in ipairs(lines) do
      if seen[line.sku] then fail('duplicate line for ' .. line.sku) end
      seen[line.sku] = true
    end
  end
  for _, line in ipairs(lines) do
    if line.quantity == nil or line.quantity < 1 then fail('quantity must be >= 1 for ' .. line.sku) end
  end
  -- The hot path is a one-line cart that is not short: no table is made that it does not need.
  local missing, short, cursors = nil, nil, {}
  for i, line in ipairs(lines) do
    local state = lineState(line, now, reclaimLimit, states)
    line.pcl = state.pcl
    if not state.present then
      missing = missing or {}
      missing[#missing + 1] = line.sku
    else
      cursors[i] = state.cursor
      local onHand, reserved = state.onHand, state.reserved
      local available = onHand - reserved
      if available < line.quantity then
        local retryAfterMs = -1
        if onHand >= line.quantity and reserved > 0 then
          local earliest = redis.call('ZRANGE', line.holdsKey, 0, 0, 'WITHSCORES')
          local expiresAt = tonumber(earliest[2])
          if expiresAt ~= nil and expiresAt ~= math.huge then retryAfterMs = math.max(expiresAt - now, 1) end
        end
        short = short or {}
        local entry = #short
        short[entry + 1], short[entry + 2] = line.sku, line.quantity
        short[entry + 3], short[entry + 4] = math.max(available, 0), retryAfterMs
      end
    end
  end
  return missing, short, cursors
end

local function holdLines(lines, cursors, reservationId, expiresAt, states)
  for i, line in ipairs(lines) do
    redis.call('HINCRBY', line.skuKey, 'reserved', line.quantity)
    -- The cache follows `reserved` at once, so that it never says less than Redis holds.
    if states then states[line.skuKey].reserved = states[line.skuKey].reserved + line.quantity end
    redis.call('ZADD', line.holdsKey, expiresAt, reservationId .. ':' .. line.quantity)
    auditHoldChange(line.skuKey, cursors[i], expiresAt, line.quantity)
  end
end

local function refusal(missing, short)
  if missing then
    table.insert(missing, 1, -3)
    return withReclaimed(missing)
  end
  if short then
    table.insert(short, 1, -1)
    return withReclaimed(short)
  end
  return nil
end
