--[[
  Reads a reservation record together with the Redis clock, so that "expired" is judged by the
  same clock that wrote the hold.

  Input:
    KEYS[1]  the bucket of the reservation's record (see includes/record)
    ARGV[1]  reservation id

  Output:
    {nowMs}                     no such reservation
    {nowMs, field, value, ...}  the record's fields: s, c, ca, ex, l, v, and when set u, cf, at, cx
]]
--- @include "includes/common"
--- @include "includes/record"

local record = recordLoad(KEYS[1], ARGV[1])
local result = record and recordFlat(record) or {}
table.insert(result, 1, nowMs())
return result
