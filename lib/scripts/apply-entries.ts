// Typed boundary of lua/applyEntries-2.lua: the one way on-hand moves in Redis.
import { assert } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';

export type EntryKind = 'adjustment' | 'allocation' | 'deallocation';

/** A ledger entry as Redis needs it: its SKU position, and what it does to on-hand. */
export interface ProjectedEntry {
  readonly sku: string;
  readonly seq: number;
  readonly delta: number;
  readonly onHandAfter: number;
  readonly kind: EntryKind;
  readonly reservationId: string | null;
  readonly debitId: string | null;
}

/** Entries one script call applies, at most (the caller splits a longer catch-up). */
export const entriesPerCallMax = 500;

export type ApplyEntriesResult =
  | { readonly kind: 'applied'; readonly pos: number; readonly onHand: number; readonly reserved: number; readonly debit: number }
  | { readonly kind: 'gap'; readonly pos: number }
  | { readonly kind: 'missing' };

export async function applyEntries(scripts: ScriptRunner, keys: RedisKeys, sku: string, entries: readonly ProjectedEntry[]): Promise<ApplyEntriesResult> {
  assert(entries.length >= 1 && entries.length <= entriesPerCallMax, `1-${entriesPerCallMax} entries per call, got ${entries.length}`);
  const args: Array<string | number> = [];
  let previous = 0;
  for (const entry of entries) {
    assert(entry.sku === sku, `entry of ${entry.sku} applied to ${sku}`);
    assert(entry.seq > previous, 'entries in ascending position');
    assert(entry.delta !== 0 && entry.onHandAfter >= 0, 'an entry moves on-hand and leaves it at 0 or more');
    assert((entry.kind === 'adjustment') === (entry.reservationId === null), 'only adjustments lack a reservation');
    previous = entry.seq;
    args.push(entry.seq, entry.delta, entry.onHandAfter, entry.kind, entry.reservationId ?? '', entry.debitId ?? '');
  }
  const reply = await scripts.run('applyEntries', [keys.skuState(sku), keys.skuHolds(sku)], args);
  if (reply[0] === 1) return { kind: 'applied', pos: Number(reply[1]), onHand: Number(reply[2]), reserved: Number(reply[3]), debit: Number(reply[4]) };
  if (reply[0] === 0) return { kind: 'gap', pos: Number(reply[1]) };
  assert(reply[0] === -1, `applyEntries replied ${String(reply[0])}`);
  return { kind: 'missing' };
}
