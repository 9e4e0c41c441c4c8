--[[
  Creates a SKU's Redis state from the ledger when Redis does not have it (a read-through
  rebuild after Redis lost its data). It never overwrites: when two callers race, the first
  one's state stands and the second changes nothing.

  Input:
    KEYS[1]  SKU state   (hash: onHand, reserved, version, ov, ls)
    KEYS[2]  holds index (zset)
    ARGV[1]  on-hand per the ledger, units
    ARGV[2]  stock version per the ledger
    ARGV[3]  id of the SKU's last ledger entry: the on-hand given reflects every entry up to it

  Output:
     {1}   created
     {0}   already there: nothing changed
    {-1}   holds exist without SKU state: Redis lost part of a SKU, refuse to guess
]]
if redis.call('EXISTS', KEYS[1]) == 1 then return { 0 } end
if redis.call('EXISTS', KEYS[2]) == 1 then return { -1 } end
redis.call('HSET', KEYS[1], 'onHand', ARGV[1], 'reserved', 0, 'version', ARGV[2], 'ov', 0, 'ls', ARGV[3])
return { 1 }
