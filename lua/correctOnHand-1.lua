--[[
  Sets a SKU's on-hand (and stock version) to what the ledger says it should be, but only if
  nothing changed it since the reconciler looked: a compare-and-set on `ov`, which every on-hand
  change bumps (stock changes, commits, cancels; never reservations, which move only reserved),
  and on the stock version. A change in between makes it refuse; the reconciler looks again.

  Input:
    KEYS[1]  SKU state (hash: onHand, reserved, version, ov, ls)
    ARGV[1]  ov seen by the reconciler
    ARGV[2]  stock version seen by the reconciler
    ARGV[3]  on-hand to set, units
    ARGV[4]  stock version to set (the ledger's)
    ARGV[5]  id of the SKU's last ledger entry (recorded as `ls`)

  Output:
     {1, onHandBefore}   corrected
     {0}                 changed since it was looked at: nothing done
    {-1}                 SKU state missing
]]
local state = redis.call('HMGET', KEYS[1], 'onHand', 'ov', 'version')
if not state[1] then return { -1 } end
if (state[2] or '0') ~= ARGV[1] or state[3] ~= ARGV[2] then return { 0 } end
redis.call('HSET', KEYS[1], 'onHand', ARGV[3], 'version', ARGV[4], 'ls', ARGV[5])
redis.call('HINCRBY', KEYS[1], 'ov', 1)
return { 1, tonumber(state[1]) }
