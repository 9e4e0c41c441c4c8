// Every Redis key Stockhold uses, in one place. Per-SKU keys carry the SKU as a hash tag and a
// reservation's record carries its id, so each SKU's state lives in one cluster slot.
export interface RedisKeys {
  skuState(sku: string): string;
  skuHolds(sku: string): string;
  /** Set for a short while when the ledger has no such SKU, so repeats do not reach Postgres. */
  skuUnknown(sku: string): string;
  /** How many stripes the SKU has (absent: 1), in stripe 0's slot; see lib/stock/stripes.ts. */
  skuStripes(sku: string): string;
  /**
   * The shared hash that keeps reservation `id`'s record (lua/includes/record.lua): named by the
   * id's first 7 characters (its creation time to 64 ms, lib/random-ids.ts), 2 random bits (the
   * slot: 4 a window) and, for a 22-character id, 2 more (`:<sub>`: 16 keys a window). The record
   * is the field named by the id less those 7 characters. A record of the layout before is in
   * `reservationPrevious(id)`, which scripts derive from this key (the same slot).
   */
  reservation(id: string): string;
  /** Where the layout before 2026-11-26 (and RECORD_LAYOUT=previous) keeps `id`'s record, as its field `id`: 4 buckets a window. */
  reservationPrevious(id: string): string;
  /** Reservation `id`'s record as versions before the shared buckets kept it (a hash of its own): read only to move it (lib/reservations/legacy-records.ts). */
  legacyReservation(id: string): string;
  /** A short-lived key in `key`'s slot, written so a WAIT on this connection covers what `key`'s primary has. */
  replicationWitness(key: string): string;
  idempotency(clientId: string, idempotencyKey: string): string;
  /** A customer's live reservations (lua/includes/guards.lua): customers are an API client's own. */
  customer(clientId: string, customerId: string): string;
  /** The same on a Redis Cluster, with what the guards count in the customer's own slot (lua/includes/customer-entries.lua). */
  customerEntries(clientId: string, customerId: string): string;
  /** An API client's token bucket (lua/takeToken-1.lua). */
  rateLimit(clientId: string): string;
}

/** Buckets per 64 ms window of reservation records: spreads a burst's records over 4 slots of a cluster. */
export const recordBucketsPerWindow = 4;
/** Characters of an id that name its window: 7 of the 8 that carry its creation time (64 ms). */
export const recordWindowChars = 7;

/** Keys each bucket is split into (`:<sub>`), by the 10th character of a 22-character id (lib/reservations/reservation-ids.ts chooses it): up to 16 keys a window, so each stays a listpack. */
export const recordSubBuckets = 4;
/** The length of the ids Stockhold makes (lib/random-ids.ts); only those get a `:<sub>` key and a short field. */
export const reservationIdLength = 22;

/** The sub-key of a 22-character id's bucket, from its 10th character; '' for another id. */
export function reservationSubBucket(id: string): string {
  return id.length === reservationIdLength ? `:${id.charCodeAt(recordWindowChars + 2) % recordSubBuckets}` : '';
}

const base64urlAlphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** The alphabet's characters by the sub-key they name (charCode % recordSubBuckets). */
const charactersOfSub = Array.from({ length: recordSubBuckets }, (_, sub) => [...base64urlAlphabet].filter((character) => character.charCodeAt(0) % recordSubBuckets === sub));

/**
 * `id` (22 characters) moved to sub-key `sub`: its 10th character replaced by one that names it,
 * picked by the replaced character's own (random) value, so the id stays as unguessable but for
 * the 2 bits it gives up.
 */
export function withSubBucket(id: string, sub: number): string {
  if (id.length !== reservationIdLength) throw new Error(`a sub-key is chosen for ${reservationIdLength}-character ids only`);
  const choices = charactersOfSub[sub];
  if (choices === undefined) throw new Error(`sub-key ${sub}: 0-${recordSubBuckets - 1}`);
  const at = recordWindowChars + 2;
  const replaced = choices[base64urlAlphabet.indexOf(id[at]!) % choices.length]!;
  return `${id.slice(0, at)}${replaced}${id.slice(at + 1)}`;
}

/** The bucket name (the hash tag) of reservation `id`'s record: window, then a spread taken from a random character. */
export function reservationBucket(id: string): string {
  const spread = id.length > recordWindowChars + 1 ? id.charCodeAt(recordWindowChars + 1) % recordBucketsPerWindow : 0;
  return `${id.slice(0, recordWindowChars)}.${spread}`;
}

export function redisKeys(prefix: string): RedisKeys {
  return {
    skuState: (sku) => `${prefix}sku:{${sku}}`,
    skuHolds: (sku) => `${prefix}holds:{${sku}}`,
    skuUnknown: (sku) => `${prefix}nosku:{${sku}}`,
    skuStripes: (sku) => `${prefix}stripes:{${sku}}`,
    reservation: (id) => `${prefix}res:{${reservationBucket(id)}}${reservationSubBucket(id)}`,
    reservationPrevious: (id) => `${prefix}res:{${reservationBucket(id)}}`,
    legacyReservation: (id) => `${prefix}res:{${id}}`,
    replicationWitness: (key) => `${key}:rw`,
    idempotency: (clientId, idempotencyKey) => `${prefix}idem:${clientId}:${idempotencyKey}`,
    customer: (clientId, customerId) => `${prefix}cust:{${clientId}:${customerId}}`,
    customerEntries: (clientId, customerId) => `${prefix}cuse:{${clientId}:${customerId}}`,
    rateLimit: (clientId) => `${prefix}rl:{${clientId}}`,
  };
}
