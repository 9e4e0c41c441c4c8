// Reading and poking reservation records as the tests need to, through the same Lua helpers the
// scripts use (lua/includes/record.lua): a record is a field of a shared bucket hash, one encoded
// string, so tests cannot HGET or HSET its fields directly.
import type { RedisClient } from '../../lib/redis/connection';
import type { RedisKeys } from '../../lib/redis/keys';
import { luaWithIncludes } from '../../lib/redis/scripts';

/** A record's fields as the record scripts reply them: s, c, ca, ex, l, v, and when set u, cf, at, cx. */
export type RecordFields = Record<string, string>;

const readBody = luaWithIncludes(`--- @include "includes/common"
--- @include "includes/record"
local record = recordLoad(KEYS[1], ARGV[1])
if not record then return {} end
return recordFlat(record)`);

// ARGV[2..]: field, value pairs; "" removes an optional field (u, cf, at, cx).
const patchBody = luaWithIncludes(`--- @include "includes/common"
--- @include "includes/record"
local record = recordLoad(KEYS[1], ARGV[1])
if not record then return 0 end
for i = 2, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if field == 's' or field == 'c' or field == 'l' or field == 'u' then
    record[field] = value ~= '' and value or nil
  elseif field == 'cx' then
    record.cx = value ~= ''
  else
    record[field] = value ~= '' and tonumber(value) or nil
  end
end
local wasConfirmed = record.s == 'confirmed'
recordSave(KEYS[1], ARGV[1], record)
-- Into or out of confirmed: the bucket's count follows, as the scripts' own steps keep it.
if record.s == 'confirmed' and not wasConfirmed then recordKeepForever(record.b) end
if wasConfirmed and record.s ~= 'confirmed' then recordKeepUntilAfterConfirmed(record.b, nowMs() + 3600000, nowMs()) end
return 1`);

/** The record's fields, or undefined when Redis has none. */
export async function readRecord(redis: RedisClient, keys: RedisKeys, id: string): Promise<RecordFields | undefined> {
  const flat = (await redis.eval(readBody, 1, keys.reservation(id), id)) as string[];
  if (flat.length === 0) return undefined;
  const fields: RecordFields = {};
  for (let index = 0; index + 1 < flat.length; index += 2) fields[flat[index]!] = flat[index + 1]!;
  return fields;
}

/** Overwrites fields of an existing record (its lifetime unchanged), as a test forcing a state does. */
export async function patchRecord(redis: RedisClient, keys: RedisKeys, id: string, fields: Record<string, string | number>): Promise<void> {
  const args = Object.entries(fields).flatMap(([field, value]) => [field, String(value)]);
  const patched = await redis.eval(patchBody, 1, keys.reservation(id), id, ...args);
  if (patched !== 1) throw new Error(`no record ${id} to patch`);
}

// A confirmed record leaves the bucket's count of confirmed records with it, as a failover
// losing the record would have lost the count's increment (one script, replicated as one).
const dropBody = luaWithIncludes(`--- @include "includes/common"
--- @include "includes/record"
local record = recordLoad(KEYS[1], ARGV[1])
if not record then return 0 end
if record.s == 'confirmed' then recordKeepUntilAfterConfirmed(record.b, nowMs() + 1, nowMs()) end
return redis.call('HDEL', record.b, record.f)`);

/** Removes a record, as Redis losing it would (its bucket's other records stay). */
export async function dropRecord(redis: RedisClient, keys: RedisKeys, id: string): Promise<void> {
  await redis.eval(dropBody, 1, keys.reservation(id), id);
}
