--[[
  Flash-sale guards, checked in the same atomic step as the holds they guard (a check in the
  caller before the script would race with every other request of the same customer).

  Customer index: a sorted set per customer of an API client (KEYS: cust:{clientId:customerId}),
  member = "<record bucket>#<reservation id>" of each reservation the customer made (see
  includes/record, which the script includes first), score = its hold's expiry (ms) when made. Only the scripts
  that create holds write it; whether a member still holds anything is read from its record:
  `pending` before its expiry, or `confirmed` (until committed, released, rejected, expired). Dead
  members are removed when read, so the index holds at most the customer's active-holds cap.
  One Redis only: the records are read by the names the index keeps (keys of other slots); a
  Redis Cluster keeps what the guards count in the customer's slot (includes/customer-entries).

  customerLiveLines(customerKey, now, scanMax)
    The encoded lines (of the first scanMax members, customerIndexMax from the guard) ("SKU:qty,...") of the customer's live reservations, removing dead members.
  publicSkuOf(sku)                       the SKU a stripe SKU ("X~t") belongs to
  customerGuard(customerKey, customerId, lines, now, activeMax)
    For lines {sku, quantity, pcl} (pcl as checkLines in includes/holds read it): refuses with
      {-6, sku}                   a line's SKU has a per-customer limit (state field `pcl`) and
                                  the request has no customer
      {-7, activeMax, active}     the customer has activeMax live reservations already (0: no cap)
      {-5, sku, limit, held}      the customer's live units of that SKU plus the request's would
                                  pass its limit (stripes count for their SKU)
    or returns nil when the request may go on, with whether the new reservation goes into the index.
  rememberCustomerHold(customerKey, bucket, reservationId, expiresAt, keepMs)
    Adds the new reservation to the index; the index expires keepMs after its newest member.
]]
-- Members read from a customer's index at most (MAX_ACTIVE_HOLDS_PER_CUSTOMER is at most this).
local customerIndexMax = 1000

local function publicSkuOf(sku)
  if not string.find(sku, '~', 1, true) then return sku end
  return (string.gsub(sku, '~%d+$', ''))
end

local function customerLiveLines(customerKey, now, scanMax)
  local members = redis.call('ZRANGE', customerKey, 0, scanMax - 1)
  local live, dead = {}, {}
  for _, member in ipairs(members) do
    local bucket, id = string.match(member, '^(.*)#([^#]*)$')
    local record = bucket and recordLoad(bucket, id)
    if record and (record.s == 'confirmed' or (record.s == 'pending' and record.ex > now)) then
      live[#live + 1] = record.l
    else
      dead[#dead + 1] = member
    end
  end
  if #dead > 0 then redis.call('ZREM', customerKey, unpack(dead)) end
  return live
end

local function customerGuard(customerKey, customerId, lines, now, activeMax)
  if customerId == '' then
    -- No customer: refused only where a line's SKU has a cap.
    for _, line in ipairs(lines) do
      if line.pcl then return { -6, publicSkuOf(line.sku) } end
    end
    return nil
  end
  -- Per SKU (stripes summed): the request's units, and the limit when the SKU has one.
  local requested, limits, order = {}, {}, {}
  for _, line in ipairs(lines) do
    local sku = publicSkuOf(line.sku)
    if requested[sku] == nil then
      requested[sku] = 0
      order[#order + 1] = sku
    end
    requested[sku] = requested[sku] + line.quantity
    local limit = tonumber(line.pcl)
    if limit ~= nil then limits[sku] = limit end
  end
  local capped = next(limits) ~= nil
  -- Nothing to count and nothing to remember: the index only has to know reservations that a
  -- cap may count (with the active cap off, those with a capped line).
  if activeMax == 0 and not capped then return nil, false end
  local live = customerLiveLines(customerKey, now, customerIndexMax)
  -- Still more members than one read takes (only with the active cap off): a capped line cannot
  -- be counted, so it is refused rather than let through.
  if capped and redis.call('ZCARD', customerKey) > customerIndexMax then return { -7, customerIndexMax, customerIndexMax } end
  if activeMax > 0 and #live >= activeMax then return { -7, activeMax, #live } end
  for _, sku in ipairs(order) do
    local limit = limits[sku]
    if limit ~= nil then
      local held = 0
      for _, encoded in ipairs(live) do
        for lineSku, quantity in string.gmatch(encoded, '([^:,]+):(%d+)') do
          if publicSkuOf(lineSku) == sku then held = held + tonumber(quantity) end
        end
      end
      if held + requested[sku] > limit then return { -5, sku, limit, held } end
    end
  end
  return nil, true
end

local function rememberCustomerHold(customerKey, bucket, reservationId, expiresAt, keepMs)
  redis.call('ZADD', customerKey, integerString(expiresAt), bucket .. '#' .. reservationId)
  local keepUntil = expiresAt + keepMs
  local current = redis.call('PEXPIRETIME', customerKey)
  if current < keepUntil then redis.call('PEXPIREAT', customerKey, integerString(keepUntil)) end
end
