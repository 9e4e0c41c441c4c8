--[[
  A token bucket per API client: `rate` tokens a second flow in, up to `burst`; a request takes
  one or is refused. Atomic, on the Redis clock, so every API process shares one bucket per
  client and no two requests take the same token.

  Input:
    KEYS[1]  the client's bucket (hash: t = tokens left, a float; at = when last filled, ms)
    ARGV[1]  rate, tokens per second (>= 1)
    ARGV[2]  burst, tokens at most (>= 1)

  Output:
    {1, remaining, fullInMs}    taken: whole tokens left, and ms until the bucket is full again
    {0, retryAfterMs, fullInMs} refused: ms until one token is there
]]
--- @include "includes/common"

local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
if rate == nil or rate < 1 or burst == nil or burst < 1 then fail('rate and burst must be >= 1') end
local now = nowMs()
local bucket = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens, filledAt = tonumber(bucket[1]), tonumber(bucket[2])
if tokens == nil or filledAt == nil then
  tokens, filledAt = burst, now
end
tokens = math.min(burst, tokens + math.max(0, now - filledAt) * rate / 1000)
local taken = tokens >= 1
if taken then tokens = tokens - 1 end
-- A bucket left alone refills; once full it is the same as no key, so it goes then.
local fullInMs = math.ceil((burst - tokens) * 1000 / rate)
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'at', integerString(now))
redis.call('PEXPIRE', KEYS[1], fullInMs + 1000)
if taken then return { 1, math.floor(tokens), fullInMs } end
return { 0, math.ceil((1 - tokens) * 1000 / rate), fullInMs }
