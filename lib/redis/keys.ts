// Every Redis key Stockhold uses, in one place. Per-SKU keys carry the SKU as a hash tag and a
// reservation's record carries its id, so each SKU's state lives in one cluster slot.
export interface RedisKeys {
  skuState(sku: string): string;
  skuHolds(sku: string): string;
  /** Set for a short while when the ledger has no such SKU, so repeats do not reach Postgres. */
  skuUnknown(sku: string): string;
  /** How many stripes the SKU has (absent: 1), in stripe 0's slot; see lib/stock/stripes.ts. */
  skuStripes(sku: string): string;
  reservation(id: string): string;
  /** A short-lived key in `key`'s slot, written so a WAIT on this connection covers what `key`'s primary has. */
  replicationWitness(key: string): string;
  idempotency(clientId: string, idempotencyKey: string): string;
  /** A customer's live reservations (lua/includes/guards.lua): customers are an API client's own. */
  customer(clientId: string, customerId: string): string;
  /** An API client's token bucket (lua/takeToken-1.lua). */
  rateLimit(clientId: string): string;
}

export function redisKeys(prefix: string): RedisKeys {
  return {
    skuState: (sku) => `${prefix}sku:{${sku}}`,
    skuHolds: (sku) => `${prefix}holds:{${sku}}`,
    skuUnknown: (sku) => `${prefix}nosku:{${sku}}`,
    skuStripes: (sku) => `${prefix}stripes:{${sku}}`,
    reservation: (id) => `${prefix}res:{${id}}`,
    replicationWitness: (key) => `${key}:rw`,
    idempotency: (clientId, idempotencyKey) => `${prefix}idem:${clientId}:${idempotencyKey}`,
    customer: (clientId, customerId) => `${prefix}cust:{${clientId}:${customerId}}`,
    rateLimit: (clientId) => `${prefix}rl:{${clientId}}`,
  };
}
