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
  read and finds it ended (lib/reservations/customer-guard.ts).

  The hash expires at its latest p entry's expiry (+ customerKeepSlackMs) and never while it has
  an f entry.

  customerEntriesMax                       entries a customer's hash holds at most (admission
                                           refuses beyond it, like MAX_ACTIVE_HOLDS_PER_CUSTOMER)
  customerEntryParse(value)                state, expiresAt, lines (or fails on a malformed value)
  customerLiveEntries(key, now)            {id, state, ex, l, value} of every live entry, the dead
                                           (p past expiry) removed
  customerKeepFor(key, live)               sets the hash's expiry from its live entries
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
