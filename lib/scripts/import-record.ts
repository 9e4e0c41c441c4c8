// Typed boundaries of lua/importRecord-1.lua and lua/forgetRecord-1.lua: moving a record of the
// layout before the shared buckets into its bucket (lib/reservations/legacy-records.ts).
import { assert } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';

/** A record as the layout before the shared buckets kept it: its hash's fields, and its PTTL. */
export interface LegacyRecord {
  readonly id: string;
  /** The hash as stored: s, c, u, ca, ex, l, v, cf, ra, cm, cn, rj, cx. */
  readonly fields: Readonly<Record<string, string>>;
  /** PTTL of the old key, ms (-1: none, as for a confirmed record). */
  readonly timeLeftMs: number;
}

export async function importRecord(scripts: ScriptRunner, keys: RedisKeys, record: LegacyRecord): Promise<'imported' | 'already'> {
  const { fields } = record;
  const settledAtField = { released: 'ra', expired: 'ra', committed: 'cm', cancelled: 'cn', rejected: 'rj' }[fields.s ?? ''];
  const settledAt = settledAtField === undefined ? '' : (fields[settledAtField] ?? '');
  const reply = await scripts.run('importRecord', [keys.reservation(record.id)], [
    record.id, fields.s ?? '', fields.c ?? '', fields.u ?? '', fields.ca ?? '', fields.ex ?? '', fields.l ?? '',
    fields.v ?? '', fields.cf ?? '', settledAt, fields.cx === undefined ? '' : '1', record.timeLeftMs,
  ]);
  assert(reply[0] === 1 || reply[0] === 2, `importRecord replied ${String(reply[0])}`);
  return reply[0] === 1 ? 'imported' : 'already';
}

/** Forgets a confirmed record the ledger has decided (at `ledgerFence` or past it); false when it was not that. */
export async function forgetRecord(scripts: ScriptRunner, keys: RedisKeys, id: string, ledgerFence: number): Promise<boolean> {
  const reply = await scripts.run('forgetRecord', [keys.reservation(id)], [id, ledgerFence]);
  assert(reply[0] === 1 || reply[0] === 0, `forgetRecord replied ${String(reply[0])}`);
  return reply[0] === 1;
}
