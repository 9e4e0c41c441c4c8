--[[
  Shared helpers for every Stockhold script.

  fail(message)       raises an error reply prefixed "ASSERT": a broken invariant, never an
                      operating error. Scripts call it before their first write, because Redis
                      does not roll back the writes a script made before an error.
  nowMs()             the Redis server clock in whole milliseconds: one clock for every API
                      instance, so expiry never depends on which process asks.
  integerString(n)    a number as a plain integer string (no exponent), for score and field args.
]]
local function fail(message)
  error({ err = 'ASSERT ' .. message })
end

local function nowMs()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function integerString(number)
  return string.format('%d', number)
end
