// Hot-SKU striping: a SKU's stock split over k stripes (1..stripesMax), each an internal SKU of
// the ledger with its own on-hand, position and Redis state (its own hash tag, so its own slot):
// stripe 0 is the SKU itself, stripe j is `<sku>~j`. `~` is outside the public SKU alphabet, so
// nothing a client sends can name a stripe. Reservation records, commit jobs and ledger entries
// carry stripe lines; every answer, event and webhook shows them summed back (publicLines).
import { assert } from '../errors';

/** Stripes a SKU can have, at most. */
export const stripesMax = 64;

const stripeSuffix = /~([1-9][0-9]?)$/;

/** The internal SKU of stripe `index` of `sku` (stripe 0 is the SKU itself). */
export function stripeSku(sku: string, index: number): string {
  assert(Number.isInteger(index) && index >= 0 && index < stripesMax, `stripe index ${index} out of 0..${stripesMax - 1}`);
  assert(!stripeSuffix.test(sku), `${sku} is a stripe already`);
  return index === 0 ? sku : `${sku}~${index}`;
}

/** Every stripe's internal SKU, stripe 0 first. */
export function stripeSkus(sku: string, stripes: number): string[] {
  assert(Number.isInteger(stripes) && stripes >= 1 && stripes <= stripesMax, `stripes ${stripes} out of 1..${stripesMax}`);
  return Array.from({ length: stripes }, (_, index) => stripeSku(sku, index));
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

/** How long a process trusts the stripe count it read for a SKU. */
export const stripeCountTtlMs = 1000;
/** SKUs whose stripe count a process remembers, at most (then it forgets them all). */
export const stripeCountsCachedMax = 100_000;

/**
 * The stripe count of each SKU as Redis has it (`stripes:{sku}`, written after a stock change and
 * by the reconciler; absent: 1), remembered for stripeCountTtlMs. A count a moment stale routes a
 * reservation to fewer stripes than there are (undersell at worst, never oversell); the caller
 * asks afresh when a SKU it thought unstriped is short.
 */
export class StripeCounts {
  private readonly cached = new Map<string, { readonly stripes: number; readonly readAtMs: number }>();
  private readonly reading = new Map<string, Promise<number>>();

  constructor(private readonly read: (sku: string) => Promise<string | null>) {}

  /** The SKU's stripe count, read again when what this process knows is older than `maxAgeMs`. */
  async of(sku: string, maxAgeMs = stripeCountTtlMs): Promise<number> {
    const cached = this.cached.get(sku);
    if (cached !== undefined && Date.now() - cached.readAtMs < maxAgeMs) return cached.stripes;
    const inFlight = this.reading.get(sku);
    if (inFlight !== undefined) return inFlight;
    const reading = this.read(sku)
      .then((raw) => {
        const parsed = raw === null ? 1 : Number(raw);
        const stripes = Number.isInteger(parsed) && parsed >= 1 && parsed <= stripesMax ? parsed : 1;
        if (this.cached.size >= stripeCountsCachedMax) this.cached.clear();
        this.cached.set(sku, { stripes, readAtMs: Date.now() });
        return stripes;
      })
      .finally(() => this.reading.delete(sku));
    this.reading.set(sku, reading);
    return reading;
  }

  /** What this process knows now: after a stock change it made, before anyone reads Redis. */
  remember(sku: string, stripes: number): void {
    this.cached.set(sku, { stripes, readAtMs: Date.now() });
  }
}
