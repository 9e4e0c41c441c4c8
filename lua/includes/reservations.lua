--[[
  Reservation record helpers, shared by the scripts that move a reservation between states.
  The record keeps its lines as "SKU:qty,SKU:qty"; the caller passes, for line i, the SKU's
  state at KEYS[first + 2(i-1)] and its holds index at KEYS[first + 2(i-1) + 1].

  recordLines(encoded)                  the lines as a list of {sku, quantity}
  lineKeys(lines, first)                the {skuKey, holdsKey} of each line, checked against the lines
  returnHolds(lines, keys, id, keepPinned)
                                        removes the reservation's holds that are still indexed and
                                        gives their units back (to a SKU state that still exists),
                                        pinned ones (+inf) too unless keepPinned; returns the units
                                        given back
]]
local function recordLines(encoded)
  local lines = {}
  for sku, quantity in string.gmatch(encoded, '([^:,]+):(%d+)') do
    lines[#lines + 1] = { sku = sku, quantity = tonumber(quantity) }
  end
  return lines
end

local function lineKeys(lines, first)
  if #KEYS ~= first - 1 + 2 * #lines then fail('KEYS must be ' .. (first - 1) .. ' + 2 per line') end
  local keys = {}
  for i, line in ipairs(lines) do
    local skuKey, holdsKey = KEYS[first + 2 * (i - 1)], KEYS[first + 2 * (i - 1) + 1]
    local tag = '{' .. line.sku .. '}'
    if not string.find(skuKey, tag, 1, true) or not string.find(holdsKey, tag, 1, true) then
      fail('KEYS out of line order at line ' .. i)
    end
    keys[i] = { skuKey = skuKey, holdsKey = holdsKey }
  end
  return keys
end

local function returnHolds(lines, keys, reservationId, keepPinned)
  -- Check every line before the first write: Redis keeps writes made before an error.
  local held = {}
  for i, line in ipairs(lines) do
    local member = reservationId .. ':' .. line.quantity
    local score = redis.call('ZSCORE', keys[i].holdsKey, member)
    -- keepPinned: a pinned hold (score +inf) belongs to a confirmed cart and stays.
    if score and not (keepPinned and tonumber(score) == math.huge) then
      -- A hold that outlived its SKU state (Redis lost part of the SKU) is simply removed: the
      -- state, when rebuilt, sums the holds that are left.
      local stateLost = redis.call('HEXISTS', keys[i].skuKey, 'pos') == 0
      local reserved = tonumber(redis.call('HGET', keys[i].skuKey, 'reserved') or '0')
      if not stateLost and reserved < line.quantity then fail('reserved below a live hold on ' .. keys[i].skuKey) end
      held[#held + 1] = { i = i, member = member, quantity = line.quantity, score = score, stateLost = stateLost }
    end
  end
  local units = 0
  for _, hold in ipairs(held) do
    redis.call('ZREM', keys[hold.i].holdsKey, hold.member)
    if not hold.stateLost then
      redis.call('HINCRBY', keys[hold.i].skuKey, 'reserved', -hold.quantity)
      auditHoldChange(keys[hold.i].skuKey, auditCursor(keys[hold.i].skuKey), hold.score, -hold.quantity)
    end
    units = units + hold.quantity
  end
  return units
end
