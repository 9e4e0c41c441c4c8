--[[
  Reservation records, kept as fields of shared hashes ("buckets") so that a record does not pay
  for a key of its own (its name, dictionary entry, object and expiry entry were about 80 B of the
  168 B a record cost as a hash per key). A bucket is named from the reservation id by
  lib/redis/keys.ts (the id's first 7 characters, its creation time to 64 ms, and 2 random bits:
  4 buckets per 64 ms window), so a bucket holds the records made within 64 ms and stays a
  listpack at thousands of reservations a second; the caller passes it as the record's key and
  the id as the field.

  A record is one string (field values stay under hash-max-listpack-value, 64 bytes, for short
  client ids, customer ids and lines):
      <status>|<fence>|<createdAt>|<expiresAt>|<extras>|<lines>|<clientId>|<customerId>
    status     one letter (recordStatusCode)
    fence      the reservation's version, decimal (1 until confirmed)
    createdAt  base 36, signed, relative to the time in the id's first 48 bits
    expiresAt  base 36, relative to createdAt
    extras     comma-separated: f<confirmedAt>, a<at> (when it was released, expired, committed,
               cancelled or rejected: the last such step), x (cancellation requested), g (a Redis
               Cluster's guards admitted it: includes/customer-entries); times in base 36
               relative to createdAt
    lines      "SKU:qty,SKU:qty"
    clientId   never contains "|" (lib/api-keys.ts); customerId is the rest (may be empty)

  Lifetime: a record is kept at least as long as it was kept as a key of its own. The bucket
  expires at the latest drop time any of its records asked for (plus recordKeepSlackMs when a
  record moved it), and never while one of them is
  confirmed (those wait for the ledger): the bucket's field "~" ("<confirmed>|<dropAtMax>") counts
  them while there are any. A record can therefore outlive its own retention by as long as the
  longest-kept record of its bucket (records of one bucket were made within 64 ms of each other).

  Places (lib/redis/keys.ts names the keys): a window's 4 buckets (one cluster slot each) are each
  split in 4 keys by a ":<sub>" suffix named by the id's 10th character (which the process that
  made the id chooses: lib/reservations/reservation-ids.ts fills :0 first, then goes round), 16
  keys a window, so a key stays a listpack (<= 512 fields) up to about 8,000 records a window
  (128,000 a second evenly spread); 4 a window overflowed into hashtables, about 130 B a record,
  at the 20,000-28,000 a second bench:memory reaches. The field is the id less its 7 window characters,
  which the key holds (7 B a record). A record of the layout before (the key without ":<sub>",
  the whole id as the field: written by a version before 2026-11-26, or with RECORD_LAYOUT=previous
  for a rolling upgrade from one, recordLayoutPrevious below) is found too, in the same slot, and
  written back where it was found; a record is never in two places. The previous place is not in
  KEYS: derived from the key that is, with the same hash tag, so Redis (which checks the slot of
  every key a script touches) runs it on a cluster as on one Redis.

  recordLoad(bucket, id)                   the record as a table (s, v, ca, ex, l, c, u, cf, at,
                                           cx, g, and b, f: the bucket and field it is in), or nil;
                                           a script keeps the lifetime of record.b, not of KEYS[1]
  recordFind(bucket, id)                   the bucket and field holding id's record and its value,
                                           or nil
  recordPlaces(bucket, id)                 the bucket and field a new record goes under, then (if
                                           any) the other place a record of id can be
  recordSave(bucket, id, record)           writes it where it was found (a new one: its new place,
                                           set as record.b, record.f); lifetime unchanged; a script checks its client
                                           id with recordClientIdOk before its first write
  recordSavePending(bucket, id, createdAt, expiresAt, lines, clientId, customerId)
                                           writes a new pending record (customerId "" for none), and
                                           returns the bucket it went into, as
                                           recordSave would, without building the record's table
                                           (and without checking clientId: the caller did)
  recordKeepUntil(bucket, dropAtMs, now, known)
                                           the bucket is kept at least until dropAtMs (`known`:
                                           optional, the call's cache of bucket expiries)
  recordKeepForever(bucket)                a record of the bucket became confirmed
  recordKeepUntilAfterConfirmed(bucket, dropAtMs, now)
                                           a confirmed record of the bucket left confirmed; it is
                                           kept until dropAtMs
  recordFlat(record)                       field, value, ... as the record scripts reply
]]
local recordStatusCode = {
  pending = 'p', confirmed = 'f', committed = 'm', released = 'r', expired = 'e', cancelled = 'x', rejected = 'j',
}
local recordStatusName = {
  p = 'pending', f = 'confirmed', m = 'committed', r = 'released', e = 'expired', x = 'cancelled', j = 'rejected',
}
local recordBase36 = '0123456789abcdefghijklmnopqrstuvwxyz'
local recordMeta = '~'
-- A bucket's expiry is set this far past the drop time that moved it, so that the records made
-- after it in its 64 ms window (same hold TTL and retention) need not move it again: one call a
-- record instead of two. Records are kept at most this much longer.
local recordKeepSlackMs = 1000

-- The last number of 36 or more written (a hold's TTL, the same for most records) and its text.
local recordBase36Last, recordBase36LastText = -1, ''
local function recordToBase36(number)
  local sign = ''
  if number < 0 then
    sign = '-'
    number = -number
  end
  if number < 36 then return sign .. string.sub(recordBase36, number + 1, number + 1) end
  if number == recordBase36Last then return sign .. recordBase36LastText end
  local text, rest = '', number
  while rest > 0 do
    local digit = rest % 36
    text = string.sub(recordBase36, digit + 1, digit + 1) .. text
    rest = (rest - digit) / 36
  end
  recordBase36Last, recordBase36LastText = number, text
  return sign .. text
end

local function recordFromBase36(text)
  if string.sub(text, 1, 1) == '-' then return -tonumber(string.sub(text, 2), 36) end
  return tonumber(text, 36)
end

-- The creation time in the id's first 48 bits (lib/random-ids.ts reservationIdAt); 0 for an id
-- that does not carry one (the times are then stored whole: longer, as correct). The digit of each
-- base64url character, by byte (built once, when the library loads).
-- (A literal: a library's top-level code runs where only `redis` is defined.)
local recordBase64urlDigits = {
  [65] = 0, [66] = 1, [67] = 2, [68] = 3, [69] = 4, [70] = 5, [71] = 6, [72] = 7, [73] = 8,
  [74] = 9, [75] = 10, [76] = 11, [77] = 12, [78] = 13, [79] = 14, [80] = 15, [81] = 16, [82] = 17,
  [83] = 18, [84] = 19, [85] = 20, [86] = 21, [87] = 22, [88] = 23, [89] = 24, [90] = 25,
  [97] = 26, [98] = 27, [99] = 28, [100] = 29, [101] = 30, [102] = 31, [103] = 32, [104] = 33,
  [105] = 34, [106] = 35, [107] = 36, [108] = 37, [109] = 38, [110] = 39, [111] = 40, [112] = 41,
  [113] = 42, [114] = 43, [115] = 44, [116] = 45, [117] = 46, [118] = 47, [119] = 48, [120] = 49,
  [121] = 50, [122] = 51, [48] = 52, [49] = 53, [50] = 54, [51] = 55, [52] = 56, [53] = 57,
  [54] = 58, [55] = 59, [56] = 60, [57] = 61, [45] = 62, [95] = 63
}

local function recordIdTime(id)
  if #id < 8 then return 0 end
  local digits = recordBase64urlDigits
  local b1, b2, b3, b4, b5, b6, b7, b8 = string.byte(id, 1, 8)
  local d1, d2, d3, d4, d5, d6, d7, d8 = digits[b1], digits[b2], digits[b3], digits[b4], digits[b5], digits[b6], digits[b7], digits[b8]
  if not (d1 and d2 and d3 and d4 and d5 and d6 and d7 and d8) then return 0 end
  return ((((((d1 * 64 + d2) * 64 + d3) * 64 + d4) * 64 + d5) * 64 + d6) * 64 + d7) * 64 + d8
end

-- Set to true by lib/redis/scripts.ts buildLibrary when RECORD_LAYOUT=previous (this exact line).
local recordLayoutPrevious = false
local recordIdLength, recordWindowChars = 22, 7

-- The places a record of `id` can be, from the key the caller passed (for a 22-character id,
-- lib/redis/keys.ts always passes the compact one, "...res:{<window>.<spread>}:<sub>"): where a
-- new record goes first, then where an older one can be. Compact: that key, the id less its 7
-- window characters. Previous: the key without its ":<sub>" (the same hash tag, so the same
-- cluster slot), the whole id. A key without ":<sub>" (another id's length, or a customer index
-- member naming a previous-layout bucket) is the only place.
local function recordPlaces(bucket, id)
  if #id ~= recordIdLength or string.byte(bucket, -2) ~= 58 then return bucket, id end
  local base = string.sub(bucket, 1, -3)
  if recordLayoutPrevious then return base, id, bucket, string.sub(id, recordWindowChars + 1) end
  return bucket, string.sub(id, recordWindowChars + 1), base, id
end

local function recordFind(bucket, id)
  local firstBucket, firstField, otherBucket, otherField = recordPlaces(bucket, id)
  local value = redis.call('HGET', firstBucket, firstField)
  if value then return firstBucket, firstField, value end
  if not otherBucket then return nil end
  value = redis.call('HGET', otherBucket, otherField)
  if value then return otherBucket, otherField, value end
  return nil
end

local function recordLoad(bucket, id)
  local foundBucket, field, value = recordFind(bucket, id)
  if not value then return nil end
  local code, fence, createdAt, expiresAt, extras, lines, clientId, customerId =
    string.match(value, '^(%a)|(%d+)|([^|]+)|([^|]+)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
  if not code or not recordStatusName[code] then fail('malformed record ' .. id .. ' in ' .. bucket) end
  local ca = recordIdTime(id) + recordFromBase36(createdAt)
  local record = {
    s = recordStatusName[code], v = tonumber(fence), ca = ca, ex = ca + recordFromBase36(expiresAt), l = lines,
    c = clientId, u = customerId ~= '' and customerId or nil, cx = false, b = foundBucket, f = field,
  }
  for extra in string.gmatch(extras, '[^,]+') do
    local tag, rest = string.sub(extra, 1, 1), string.sub(extra, 2)
    if tag == 'f' then
      record.cf = ca + recordFromBase36(rest)
    elseif tag == 'a' then
      record.at = ca + recordFromBase36(rest)
    elseif tag == 'x' then
      record.cx = true
    elseif tag == 'g' then
      record.g = true
    end
  end
  return record
end

local function recordClientIdOk(clientId)
  return not string.find(clientId, '|', 1, true)
end

-- The one place a record's string is put together (the layout above).
local function recordWrite(bucket, field, id, code, fence, createdAt, expiresAt, extras, lines, clientId, customerId)
  redis.call('HSET', bucket, field, code .. '|' .. fence .. '|' .. recordToBase36(createdAt - recordIdTime(id)) .. '|'
    .. recordToBase36(expiresAt - createdAt) .. '|' .. extras .. '|' .. lines .. '|' .. clientId .. '|' .. customerId)
end

local function recordSave(bucket, id, record)
  local code = recordStatusCode[record.s]
  if not code then fail('unknown status ' .. tostring(record.s)) end
  if not recordClientIdOk(record.c) then fail('a client id with "|"') end
  local extras = ''
  if record.cf or record.at or record.cx or record.g then
    local list = {}
    if record.cf then list[#list + 1] = 'f' .. recordToBase36(record.cf - record.ca) end
    if record.at then list[#list + 1] = 'a' .. recordToBase36(record.at - record.ca) end
    if record.cx then list[#list + 1] = 'x' end
    if record.g then list[#list + 1] = 'g' end
    extras = table.concat(list, ',')
  end
  -- A new record's table learns its place, so the script's later steps keep that key's lifetime.
  if not record.b then record.b, record.f = recordPlaces(bucket, id) end
  local toBucket, toField = record.b, record.f
  recordWrite(toBucket, toField, id, code, integerString(record.v), record.ca, record.ex, extras, record.l, record.c, record.u or '')
end

-- A new pending record: what recordSave writes for {s = 'pending', v = 1, ca = createdAt,
-- ex = expiresAt, l = lines, c = clientId, u = customerId}, without the table (the hot path's).
-- The caller checked clientId with recordClientIdOk before its first write.
local function recordSavePending(bucket, id, createdAt, expiresAt, lines, clientId, customerId)
  local toBucket, toField = recordPlaces(bucket, id)
  recordWrite(toBucket, toField, id, 'p', '1', createdAt, expiresAt, '', lines, clientId, customerId)
  return toBucket
end

local function recordMetaOf(bucket)
  local meta = redis.call('HGET', bucket, recordMeta)
  if not meta then return nil end
  local confirmed, dropAtMax = string.match(meta, '^(%d+)|(%d+)$')
  return tonumber(confirmed), tonumber(dropAtMax)
end

-- One call in the common case (the bucket has an expiry already): a bucket without one is new,
-- or kept for a confirmed record (then its field "~" takes the drop time instead). `known` (a
-- cache for one call, optional) remembers each bucket's expiry once read or set, so the call's
-- other records in that bucket make no call at all.
local function recordKeepUntil(bucket, dropAtMs, now, known)
  -- Never a time already past: that would delete the bucket's other records with it.
  local target = math.max(dropAtMs, now + 1)
  local current = (known and known[bucket]) or redis.call('PEXPIRETIME', bucket)
  if current == -1 then
    local confirmed, dropAtMax = recordMetaOf(bucket)
    if confirmed then
      if dropAtMs > dropAtMax then redis.call('HSET', bucket, recordMeta, confirmed .. '|' .. integerString(dropAtMs)) end
      return
    end
  end
  if current == -1 or current < target then
    current = target + recordKeepSlackMs
    redis.call('PEXPIREAT', bucket, integerString(current))
  end
  if known then known[bucket] = current end
end

local function recordKeepForever(bucket)
  local confirmed, dropAtMax = recordMetaOf(bucket)
  if not confirmed then confirmed, dropAtMax = 0, math.max(redis.call('PEXPIRETIME', bucket), 0) end
  redis.call('HSET', bucket, recordMeta, (confirmed + 1) .. '|' .. integerString(dropAtMax))
  redis.call('PERSIST', bucket)
end

local function recordKeepUntilAfterConfirmed(bucket, dropAtMs, now)
  local confirmed, dropAtMax = recordMetaOf(bucket)
  if not confirmed then return recordKeepUntil(bucket, dropAtMs, now) end
  dropAtMax = math.max(dropAtMax, dropAtMs)
  if confirmed > 1 then
    redis.call('HSET', bucket, recordMeta, (confirmed - 1) .. '|' .. integerString(dropAtMax))
    return
  end
  redis.call('HDEL', bucket, recordMeta)
  redis.call('PEXPIREAT', bucket, integerString(math.max(dropAtMax, now + 1)))
end

local function recordFlat(record)
  local flat = { 's', record.s, 'c', record.c, 'ca', integerString(record.ca), 'ex', integerString(record.ex), 'l', record.l, 'v', integerString(record.v) }
  if record.u then table.insert(flat, 'u'); table.insert(flat, record.u) end
  if record.cf then table.insert(flat, 'cf'); table.insert(flat, integerString(record.cf)) end
  if record.at then table.insert(flat, 'at'); table.insert(flat, integerString(record.at)) end
  if record.cx then table.insert(flat, 'cx'); table.insert(flat, '1') end
  if record.g then table.insert(flat, 'g'); table.insert(flat, '1') end
  return flat
end
