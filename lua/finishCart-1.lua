--[[
  Ends a cart's idempotency record on its slot (the coordinator's last step): "settle" turns this
  cart's holding marker into the done record a replay reads (written too when the marker is gone,
  since the cart is this one); "abort" forgets this cart's marker after a refusal (refusals are
  not stored: a retry tries again). Another cart's record under the key is left alone.

  Input:
    KEYS[1]  idempotency record
    ARGV[1]  "settle" or "abort"
    ARGV[2]  request fingerprint
    ARGV[3]  reservation id
    ARGV[4]  settle: createdAtMs
    ARGV[5]  settle: expiresAtMs
    ARGV[6]  settle: idempotency record ttl, ms

  Output:
    {1}      done (settled or forgotten)
    {0}      nothing to do (already settled; or, for abort, not this cart's marker)
    {-1}     the key holds another cart's record: left alone
]]
--- @include "includes/common"

local record = redis.call('GET', KEYS[1])
local state, id
if record then
  local fingerprint, payload
  state, fingerprint, payload = string.match(record, '^(%a)|([^|]*)|(.*)$')
  id = payload and string.match(payload, '^([^|]+)|')
  if fingerprint ~= ARGV[2] or id ~= ARGV[3] then return { -1 } end
end
if ARGV[1] == 'abort' then
  if state ~= 'h' then return { 0 } end
  redis.call('DEL', KEYS[1])
  return { 1 }
end
if ARGV[1] ~= 'settle' then fail('finishCart: settle or abort, got ' .. tostring(ARGV[1])) end
if state == 'd' then return { 0 } end
redis.call('SET', KEYS[1], 'd|' .. ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[4] .. '|' .. ARGV[5], 'PX', ARGV[6])
return { 1 }
