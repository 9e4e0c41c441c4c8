-- wrk script for the many-connections rows of `npm run bench:http` (bench/hot-path.ts). Each
-- request carries a unique Idempotency-Key and, in X-Request-Id (which the server echoes), the
-- time it was sent; each answer's latency is then known by its status: served (201) apart from
-- shed (503). Arguments: prefix, authorization header value, JSON body.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function nowUs()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000000 + math.floor(tonumber(clock.tv_nsec) / 1000)
end

local threads = {}
local nextThread = 0
function setup(thread)
  thread:set("threadId", nextThread)
  nextThread = nextThread + 1
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1]
  authorization = args[2]
  body = args[3]
  sent = 0
  served = {}
  shed = {}
  other = 0
  unmatched = 0
end

function request()
  sent = sent + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = authorization,
    ["Idempotency-Key"] = prefix .. threadId .. "-" .. sent,
    ["X-Request-Id"] = "t" .. nowUs(),
  }, body)
end

function response(status, headers, _)
  local id = headers["X-Request-Id"] or headers["x-request-id"]
  if id == nil or string.sub(id, 1, 1) ~= "t" then
    unmatched = unmatched + 1
    return
  end
  local ms = math.floor((nowUs() - tonumber(string.sub(id, 2))) / 1000)
  if status == 201 then
    served[ms] = (served[ms] or 0) + 1
  elseif status == 503 then
    shed[ms] = (shed[ms] or 0) + 1
  else
    other = other + 1
  end
end

local function merge(into, from)
  for ms, count in pairs(from) do into[ms] = (into[ms] or 0) + count end
end

local function histogram(h)
  local parts = {}
  for ms, count in pairs(h) do table.insert(parts, '"' .. ms .. '":' .. count) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, _, _)
  local allServed, allShed, allOther, allUnmatched = {}, {}, 0, 0
  for _, thread in ipairs(threads) do
    merge(allServed, thread:get("served"))
    merge(allShed, thread:get("shed"))
    allOther = allOther + thread:get("other")
    allUnmatched = allUnmatched + thread:get("unmatched")
  end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write("RESULT {\"served\":" .. histogram(allServed) .. ",\"shed\":" .. histogram(allShed) .. ",\"other\":" .. allOther ..
    ",\"unmatched\":" .. allUnmatched .. ",\"errors\":" .. errors .. ",\"durationUs\":" .. summary.duration .. "}\n")
end
