--[[
  A lease that lets one reconciliation run at a time across every process and trigger
  (scheduled, manual, CLI). Holder-checked: only the token that acquired it renews or releases
  it, so a run that outlived its lease cannot release its successor's.

  Input:
    KEYS[1]  the lease (string: holder token)
    ARGV[1]  "acquire", "renew" or "release"
    ARGV[2]  holder token
    ARGV[3]  lease, milliseconds (acquire and renew)

  Output:
    {1}      done
    {0}      acquire: another holder has it; renew/release: not ours (any more)

  Every step can be sent again when its reply was lost: an acquire by the holder that has the
  lease answers {1} (and renews it), so an acquire that timed out in the client but ran in Redis
  is found, not left to block every run for the lease's length.
]]
local holder = redis.call('GET', KEYS[1])
if ARGV[1] == 'acquire' then
  if holder and holder ~= ARGV[2] then return { 0 } end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return { 1 }
end
if holder ~= ARGV[2] then return { 0 } end
if ARGV[1] == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return { 1 }
