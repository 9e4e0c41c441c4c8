// New reservation ids choose their record's sub-key (lib/reservations/reservation-ids.ts): the
// first 256 of a window in sub-key 0, then round the 4; the id stays a 22-character base64url id
// carrying its creation time, and unique.
import { describe, expect, it } from 'vitest';
import { createdAtOfReservationId, reservationIdAt } from '../lib/random-ids';
import { recordSubBuckets, redisKeys, reservationSubBucket, withSubBucket } from '../lib/redis/keys';
import { idsPerSubKey, recordWindowMs, ReservationIds } from '../lib/reservations/reservation-ids';
import { reservationIdPattern } from '../lib/reservations/reservation-service';

const keys = redisKeys('t:');
const subOf = (id: string) => Number(reservationSubBucket(id).slice(1));

describe('reservation ids and their sub-keys', () => {
  it('withSubBucket moves any id to any sub-key, changing only its 10th character', () => {
    for (let trial = 0; trial < 2000; trial += 1) {
      const id = reservationIdAt(Date.now());
      const sub = trial % recordSubBuckets;
      const moved = withSubBucket(id, sub);
      expect(moved).toMatch(reservationIdPattern);
      expect(subOf(moved)).toBe(sub);
      expect(moved.slice(0, 9)).toBe(id.slice(0, 9));
      expect(moved.slice(10)).toBe(id.slice(10));
      expect(keys.reservationPrevious(moved)).toBe(keys.reservationPrevious(id));
    }
    expect(() => withSubBucket('short', 0)).toThrow(/22-character/);
    expect(() => withSubBucket(reservationIdAt(0), recordSubBuckets)).toThrow(/sub-key/);
  });

  it('keeps a random choice within a sub-key: each of its characters is used', () => {
    const seen = Array.from({ length: recordSubBuckets }, () => new Set<string>());
    for (let trial = 0; trial < 4000; trial += 1) {
      const sub = trial % recordSubBuckets;
      seen[sub]!.add(withSubBucket(reservationIdAt(Date.now()), sub)[9]!);
    }
    expect(seen.reduce((sum, characters) => sum + characters.size, 0)).toBe(64);
  });

  it('puts a window\'s first 256 ids in sub-key 0, then goes round the 4; a new window starts again at 0', () => {
    const ids = new ReservationIds();
    const at = Math.floor(Date.UTC(2026, 10, 26, 12) / recordWindowMs) * recordWindowMs;
    const made = Array.from({ length: idsPerSubKey * 5 + 10 }, (_, index) => ids.next(at + (index % recordWindowMs)));
    const subs = made.map(subOf);
    expect(subs.slice(0, idsPerSubKey)).toEqual(Array(idsPerSubKey).fill(0));
    expect(subs.slice(idsPerSubKey, 2 * idsPerSubKey)).toEqual(Array(idsPerSubKey).fill(1));
    expect(subs.slice(3 * idsPerSubKey, 4 * idsPerSubKey)).toEqual(Array(idsPerSubKey).fill(3));
    expect(subs.slice(4 * idsPerSubKey)).toEqual([...Array(idsPerSubKey).fill(0), ...Array(10).fill(1)]);
    expect(new Set(made).size).toBe(made.length);
    for (const [index, id] of made.entries()) {
      expect(id).toMatch(reservationIdPattern);
      expect(createdAtOfReservationId(id)).toBe(at + (index % recordWindowMs));
    }
    expect(subOf(ids.next(at + recordWindowMs))).toBe(0);
  });
});
