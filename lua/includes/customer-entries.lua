--[[
  The flash-sale guards on a Redis Cluster (docs/design.md, "Flash-sale guards on a cluster"): a
  customer's live reservations kept in the customer's own slot, with everything a guard counts, so
  the check and the admission are one atomic step there without reading records in other slots
  (lua/includes/guards.lua reads records: one Redis only).

  Customer entries: a hash per customer of an API client (KEYS: cuse:{clientId:customerId}),
  field = reservation id, value "<state>|<expiresAt ms>|<lines>":
    p   pending: live until expiresAt (the hold's expiry, the same number the holds carry)
    f   confirmed: live until forgotten (the commit, a reject, or a check that found it ended)
    lines  "SKU:qty,..." with the SKUs a customer buys (a stripe counts for its SKU)
  Written by admitCustomer (create: check and add, in the customer's slot, before any hold),
  pinCustomer (confirm: p -> f, before the holds are pinned) and forgetCustomer. A crash between
  a cart's steps can leave an entry that counts for longer than its reservation lives (never
  shorter): a p entry until its expiry, an f entry until a refused admission has its record
  read and finds it ended (the service's customer guard, in lib/reservations).

  The hash expires at its latest p entry's expiry (+ customerKeepSlackMs) and never while it has
  an f entry.

  customerEntriesMax                       entries a customer's hash holds at most (admission
                                           refuses beyond it, like MAX_ACTIVE_HOLDS_PER_CUSTOMER)
  customerEntryParse(value)                state, expiresAt, lines (or fails on a malformed value)
  customerLiveEntries(key, now)            {id, state, ex, l, value} of every live entry, the dead
                                           (p past expiry) removed
  customerKeepFor(key, live)               sets the hash's expiry from its live entries
  customerLinesOk(encoded)                 lines are "SKU:qty,..." with at least one line
  customerLimitsFrom(first)                {sku, limit} of ARGV[first], ARGV[first + 1], ... (fails on a
                                           limit below 1: call it before the first write)
  customerRefusal(live, id, encoded, activeMax, limits)
                                           whether the cart `id` with these lines fits beside the
                                           other live entries: nil, or the refusal
                                           {-7, activeMax, active, id, value, ...} or
                                           {-5, sku, limit, held, id, value, ...} ending with (at most
                                           customerCheckMax, in id order) the entries that counted
]]
local customerEntriesMax = 1000
local customerKeepSlackMs = 1000

local function customerEntryParse(value)
  local state, expiresAt, lines = string.match(value, '^([pf])|(%d+)|(.*)$')
  if not state then fail('malformed customer entry: ' .. value) end
  return state, tonumber(expiresAt), lines
end

local function customerLiveEntries(key, now)
  local flat = redis.call('HGETALL', key)
  local live, dead = {}, {}
  for i = 1, #flat, 2 do
    local state, expiresAt, lines = customerEntryParse(flat[i + 1])
    if state == 'f' or expiresAt > now then
      live[#live + 1] = { id = flat[i], state = state, ex = expiresAt, l = lines, value = flat[i + 1] }
    else
      dead[#dead + 1] = flat[i]
    end
  end
  if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
  return live
end

local function customerKeepFor(key, live)
  if #live == 0 then
    redis.call('DEL', key)
    return
  end
  local latest = 0
  for _, entry in ipairs(live) do
    if entry.state == 'f' then
      redis.call('PERSIST', key)
      return
    end
    latest = math.max(latest, entry.ex)
  end
  redis.call('PEXPIREAT', key, integerString(latest + customerKeepSlackMs))
end

local customerCheckMax = 16

local function customerLinesOk(encoded)
  if encoded == nil or encoded == '' then return false end
  for part in string.gmatch(encoded .. ',', '([^,]*),') do
    if not string.match(part, '^[^:]+:%d+$') then return false end
  end
  return true
end

local function customerLimitsFrom(first)
  local limits = {}
  for i = first, #ARGV, 2 do
    local limit = tonumber(ARGV[i + 1])
    if limit == nil or limit < 1 then fail('a per-customer limit must be >= 1 for ' .. tostring(ARGV[i])) end
    limits[#limits + 1] = { sku = ARGV[i], limit = limit }
  end
  return limits
end

local function customerRefused(reply, counted)
  table.sort(counted, function(a, b) return a.id < b.id end)
  for i = 1, math.min(#counted, customerCheckMax) do
    reply[#reply + 1] = counted[i].id
    reply[#reply + 1] = counted[i].value
  end
  return reply
end

local function customerRefusal(live, id, encoded, activeMax, limits)
  local others = {}
  for _, entry in ipairs(live) do
    if entry.id ~= id then others[#others + 1] = entry end
  end
  if #others >= customerEntriesMax then return customerRefused({ -7, customerEntriesMax, #others }, others) end
  if activeMax > 0 and #others >= activeMax then return customerRefused({ -7, activeMax, #others }, others) end
  local requested = {}
  for sku, quantity in string.gmatch(encoded, '([^:,]+):(%d+)') do requested[sku] = (requested[sku] or 0) + tonumber(quantity) end
  for _, capped in ipairs(limits) do
    local held, counted = 0, {}
    for _, entry in ipairs(others) do
      local units = 0
      for lineSku, quantity in string.gmatch(entry.l, '([^:,]+):(%d+)') do
        if lineSku == capped.sku then units = units + tonumber(quantity) end
      end
      if units > 0 then
        held = held + units
        counted[#counted + 1] = entry
      end
    end
    if held + (requested[capped.sku] or 0) > capped.limit then return customerRefused({ -5, capped.sku, capped.limit, held }, counted) end
  end
  return nil
end
