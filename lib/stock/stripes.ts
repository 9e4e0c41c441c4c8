// Hot-SKU striping: a SKU's stock split over k stripes (1..stripesMax), each an internal SKU of
// the ledger with its own on-hand, position and Redis state (its own hash tag, so its own slot):
// stripe 0 is the SKU itself, the others `<sku>~t` with a tag t chosen so that the stripes land
// on different primaries (chooseStripeTags), kept on the SKU's row and in Redis. `~` is outside the public SKU alphabet, so
// nothing a client sends can name a stripe. Reservation records, commit jobs and ledger entries
// carry stripe lines; every answer, event and webhook shows them summed back (publicLines).
import { assert } from '../errors';

/** Stripes a SKU can have, at most. */
export const stripesMax = 64;

const stripeSuffix = /~([1-9][0-9]{0,3})$/;

/** Stripe tags run from 1 to this (the `~t` suffix of a stripe's name). */
export const stripeTagMax = 9999;
/** Free tags looked at for one new stripe, at most (the first on an empty primary ends the look). */
export const stripeTagScanMax = 1000;

/** The internal SKU of the stripe of `sku` tagged `tag` (tag 0: the SKU itself, stripe 0). */
export function stripeSku(sku: string, tag: number): string {
  assert(Number.isInteger(tag) && tag >= 0 && tag <= stripeTagMax, `stripe tag ${tag} out of 0..${stripeTagMax}`);
  assert(!stripeSuffix.test(sku), `${sku} is a stripe already`);
  return tag === 0 ? sku : `${sku}~${tag}`;
}

/** Every stripe's internal SKU, stripe 0 (the SKU itself) first, then one per tag. */
export function stripeSkus(sku: string, tags: readonly number[]): string[] {
  assert(tags.length < stripesMax, `at most ${stripesMax} stripes`);
  return [sku, ...tags.map((tag) => stripeSku(sku, tag))];
}

/**
 * The tags of a SKU's stripes 1..k-1 after a change to k stripes: the first ones it has keep
 * their tags (their holds and units stay where they are); each new one takes the free tag whose
 * stripe lands on the primary holding the fewest of the SKU's stripes so far (`ownerOf` names the
 * primary of a stripe SKU's slot; on one Redis every tag is alike and the smallest free is taken),
 * so a SKU's stripes spread over the primaries instead of where the hash happens to put them.
 */
export function chooseStripeTags(sku: string, existing: readonly number[], stripes: number, ownerOf: (stripeSku: string) => string): number[] {
  assert(Number.isInteger(stripes) && stripes >= 1 && stripes <= stripesMax, `stripes ${stripes} out of 1..${stripesMax}`);
  const tags = existing.slice(0, stripes - 1);
  const load = new Map<string, number>();
  for (const name of stripeSkus(sku, tags)) load.set(ownerOf(name), (load.get(ownerOf(name)) ?? 0) + 1);
  while (tags.length < stripes - 1) {
    let best: { tag: number; load: number } | undefined;
    for (let tag = 1, scanned = 0; tag <= stripeTagMax && scanned < stripeTagScanMax; tag += 1) {
      if (tags.includes(tag)) continue;
      scanned += 1;
      const onOwner = load.get(ownerOf(stripeSku(sku, tag))) ?? 0;
      if (best === undefined || onOwner < best.load) best = { tag, load: onOwner };
      if (onOwner === 0) break;
    }
    assert(best !== undefined, `no free stripe tag for ${sku}`);
    tags.push(best.tag);
    const owner = ownerOf(stripeSku(sku, best.tag));
    load.set(owner, (load.get(owner) ?? 0) + 1);
  }
  return tags;
}

/** A SKU's stripe tags as Redis keeps them (`5,17`; empty: unstriped). */
export function encodeStripeTags(tags: readonly number[]): string {
  return tags.join(',');
}

export function decodeStripeTags(raw: string | null): number[] {
  if (raw === null || raw === '') return [];
  const tags = raw.split(',').map(Number);
  return tags.length < stripesMax && tags.every((tag) => Number.isInteger(tag) && tag >= 1 && tag <= stripeTagMax) ? tags : [];
}

/** The public SKU an internal one belongs to (itself when it is no stripe). */
export function publicSku(sku: string): string {
  return sku.replace(stripeSuffix, '');
}

export function isStripe(sku: string): boolean {
  return stripeSuffix.test(sku);
}

/** Stripe lines summed back to their SKU, in SKU order (as normalised lines are). */
export function publicLines<Line extends { readonly sku: string; readonly quantity: number }>(lines: readonly Line[]): Array<{ sku: string; quantity: number }> {
  if (!lines.some((line) => isStripe(line.sku))) return lines.map((line) => ({ sku: line.sku, quantity: line.quantity }));
  const totals = new Map<string, number>();
  for (const line of lines) totals.set(publicSku(line.sku), (totals.get(publicSku(line.sku)) ?? 0) + line.quantity);
  return [...totals].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([sku, quantity]) => ({ sku, quantity }));
}

/** How long a process trusts the stripe layout it read for a SKU. */
export const stripeLayoutTtlMs = 1000;
/** SKUs whose stripe layout a process remembers, at most (then it forgets them all). */
export const stripeLayoutsCachedMax = 100_000;

/**
 * Each SKU's stripes as Redis has them (`stripes:{sku}`: the tags, written after a stock change and
 * by the reconciler; absent: unstriped), remembered for stripeLayoutTtlMs. A layout a moment stale
 * routes a reservation to fewer stripes than there are (undersell at worst, never oversell); the
 * caller asks afresh when a SKU it thought unstriped is short.
 */
export class StripeLayouts {
  private readonly cached = new Map<string, { readonly stripes: readonly string[]; readonly readAtMs: number }>();
  private readonly reading = new Map<string, Promise<readonly string[]>>();

  constructor(private readonly read: (sku: string) => Promise<string | null>) {}

  /** The SKU's stripe SKUs, stripe 0 first ([sku] when unstriped), read again when older than `maxAgeMs`. */
  async of(sku: string, maxAgeMs = stripeLayoutTtlMs): Promise<readonly string[]> {
    const cached = this.cached.get(sku);
    if (cached !== undefined && Date.now() - cached.readAtMs < maxAgeMs) return cached.stripes;
    const inFlight = this.reading.get(sku);
    if (inFlight !== undefined) return inFlight;
    const reading = this.read(sku)
      .then((raw) => {
        const stripes = stripeSkus(sku, decodeStripeTags(raw));
        this.remember(sku, stripes);
        return stripes;
      })
      .finally(() => this.reading.delete(sku));
    this.reading.set(sku, reading);
    return reading;
  }

  /** What this process knows now: after a stock change it made, before anyone reads Redis. */
  remember(sku: string, stripes: readonly string[]): void {
    if (this.cached.size >= stripeLayoutsCachedMax) this.cached.clear();
    this.cached.set(sku, { stripes, readAtMs: Date.now() });
  }
}
