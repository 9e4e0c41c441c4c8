--[[
  Reads a reservation record together with the Redis clock, so that "expired" is judged by the
  same clock that wrote the hold.

  Input:
    KEYS[1]  reservation record (hash: s, c, u, ca, ex, l, ra)

  Output:
    {nowMs}                     no such reservation
    {nowMs, field, value, ...}  the record's fields
]]
--- @include "includes/common"

local result = redis.call('HGETALL', KEYS[1])
table.insert(result, 1, nowMs())
return result
