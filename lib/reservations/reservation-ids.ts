// New reservation ids, each choosing which of its bucket's 4 keys its record goes to
// (lib/redis/keys.ts `:<sub>`): a process puts the first idsPerSubKey ids of each 64 ms window in
// sub-key 0, the next in 1, and so on round the 4. At the rates most sales see, a window's
// records then share its 4 keys of sub-key 0, few enough keys that each key's own cost (its name,
// dictionary and expiry entries, about 60 B) is spread over many records; in a burst they spread
// over all 16, so no key passes hash-max-listpack-entries (512) and turns into a hashtable
// (about 130 B a record instead of 60 B). docs/design.md, "16 keys a window".
import { recordSubBuckets, withSubBucket } from '../redis/keys';
import { reservationIdAt } from '../random-ids';

/** Ids of one window a process puts in one sub-key before the next: about 64 records a key (4 spreads). */
export const idsPerSubKey = 256;
/** A window: the time the id's first 7 characters name (2^6 ms). */
export const recordWindowMs = 64;

export class ReservationIds {
  private window = -1;
  private made = 0;

  next(nowMs: number): string {
    const window = Math.floor(nowMs / recordWindowMs);
    if (window !== this.window) {
      this.window = window;
      this.made = 0;
    }
    const sub = Math.floor(this.made / idsPerSubKey) % recordSubBuckets;
    this.made += 1;
    return withSubBucket(reservationIdAt(nowMs), sub);
  }
}
