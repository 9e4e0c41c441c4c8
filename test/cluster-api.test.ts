// The HTTP contract on a real Redis Cluster (three primaries, three replicas, started here): the
// same service, with carts held slot by slot (lib/reservations/cart-across-slots.ts), BullMQ on
// the hash-tagged prefix, confirms answered after WAIT saw a replica; and the interleavings the
// flash-sale guards' steps in the customer's slot depend on (lib/reservations/customer-guard.ts),
// forced with the script latch. (The guards' contract itself runs on a cluster in the cluster run
// of test/guards.test.ts.)
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateRedisCluster } from '../chaos/servers';
import { slotOf } from '../lib/redis/slots';
import { stripeSkus } from '../lib/stock/stripes';
import { idempotencyKey, startHarness, type Harness } from './support/harness';
import { patchRecord, readRecord } from './support/records';
import { stalledConfirmGraceMs } from '../lib/reservations/customer-guard';
import { errors } from '../lib/errors';

let cluster: PrivateRedisCluster;
let harness: Harness;

beforeAll(async () => {
  cluster = await PrivateRedisCluster.start({ primaries: 3, replicasPerPrimary: 1 });
  harness = await startHarness({ COMMIT_BATCH_WAIT_MS: '1', RECONCILE_COMMIT_GRACE_MS: '1000' }, { ownDatabase: true, clusterSeeds: cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })) });
  await harness.startWorker();
}, 60_000);

afterAll(async () => {
  await harness?.close();
  await cluster?.remove();
});

/** Two new SKUs whose state lives in different slots, with stock. */
async function twoSlotSkus(onHandA: number, onHandB: number): Promise<[string, string]> {
  const a = `CA-${randomBytes(4).toString('hex')}`;
  let b = `CB-${randomBytes(4).toString('hex')}`;
  while (slotOf(harness.stockhold.keys.skuState(b)) === slotOf(harness.stockhold.keys.skuState(a))) b = `CB-${randomBytes(4).toString('hex')}`;
  for (const [sku, onHand] of [[a, onHandA], [b, onHandB]] as const) {
    const response = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand } });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
  }
  return [a, b];
}

const reserve = (lines: Array<{ sku: string; quantity: number }>, key = idempotencyKey()) => harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: key, body: { lines } });

/** The primary ("host:port") that owns `key`'s slot, asked of the cluster itself. */
async function ownerOf(key: string): Promise<string> {
  const slot = slotOf(key);
  const slots = await harness.stockhold.redis.cluster('SLOTS');
  const range = slots.find(([from, to]) => slot >= from && slot <= to);
  expect(range).toBeDefined();
  return `${range![2]![0]}:${range![2]![1]}`;
}

describe('hot-SKU striping on a Redis Cluster', () => {
  it('puts a SKU\'s stripes on different primaries: 3 stripes on 3, 6 stripes 2 on each; growing keeps the stripes it has', async () => {
    const sku = `CS-${randomBytes(4).toString('hex')}`;
    const stripesOf = async () => stripeSkus(sku, ((await harness.stockhold.knex('skus').first('stripe_tags').where({ sku })).stripe_tags as number[]).map(Number));
    const perPrimary = async (names: readonly string[]) => {
      const counts = new Map<string, number>();
      for (const name of names) counts.set(await ownerOf(harness.stockhold.keys.skuState(name)), (counts.get(await ownerOf(harness.stockhold.keys.skuState(name))) ?? 0) + 1);
      return [...counts.values()].sort();
    };
    expect((await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 30, stripes: 3 } })).status).toBe(200);
    const three = await stripesOf();
    expect(await perPrimary(three)).toEqual([1, 1, 1]);
    expect((await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 30, stripes: 6 } })).status).toBe(200);
    const six = await stripesOf();
    expect(six.slice(0, 3)).toEqual(three);
    expect(await perPrimary(six)).toEqual([2, 2, 2]);
    expect((await harness.call('GET', `/v1/skus/${sku}`, { as: 'checkout' })).body).toMatchObject({ onHand: 30, available: 30, stripes: 6 });
  });
});

describe('the HTTP contract on a Redis Cluster', () => {
  it('reserves a cart across slots, replays it, confirms it into the ledger, and reads it back', async () => {
    const [a, b] = await twoSlotSkus(5, 5);
    const key = idempotencyKey();
    const created = await reserve([{ sku: a, quantity: 2 }, { sku: b, quantity: 1 }], key);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const replay = await reserve([{ sku: a, quantity: 2 }, { sku: b, quantity: 1 }], key);
    expect(replay.body.id).toBe(created.body.id);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect((await harness.call('GET', `/v1/skus/${a}`)).body).toMatchObject({ onHand: 5, reserved: 2 });
    const confirmed = await harness.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=15' } });
    expect(confirmed.body.status, JSON.stringify(confirmed.body)).toBe('committed');
    expect((await harness.call('GET', `/v1/skus/${a}`)).body).toMatchObject({ onHand: 3, reserved: 0 });
    expect((await harness.call('GET', `/v1/skus/${b}`)).body).toMatchObject({ onHand: 4, reserved: 0 });
    expect((await harness.call('GET', `/v1/reservations/${created.body.id}`, { as: 'checkout' })).body.status).toBe('committed');
  }, 30_000);

  it('refuses a cart short in one slot with 409, holding nothing; releases a pending one', async () => {
    const [a, b] = await twoSlotSkus(5, 1);
    const short = await reserve([{ sku: a, quantity: 1 }, { sku: b, quantity: 2 }]);
    expect(short.status).toBe(409);
    expect(short.body).toMatchObject({ code: 'insufficient_stock', lines: [{ sku: b, requested: 2, available: 1 }] });
    expect((await harness.call('GET', `/v1/skus/${a}`)).body.reserved).toBe(0);
    const held = await reserve([{ sku: a, quantity: 1 }, { sku: b, quantity: 1 }]);
    expect((await harness.call('DELETE', `/v1/reservations/${held.body.id}`, { as: 'checkout' })).body.status).toBe('released');
    expect([(await harness.call('GET', `/v1/skus/${a}`)).body.reserved, (await harness.call('GET', `/v1/skus/${b}`)).body.reserved]).toEqual([0, 0]);
  }, 30_000);

  it('never oversells under 200 racing two-slot carts for 20 units, and the reconciler finds Redis and the ledger agree', async () => {
    const [a, b] = await twoSlotSkus(20, 40);
    const answers = await Promise.all(Array.from({ length: 200 }, () => reserve([{ sku: a, quantity: 1 }, { sku: b, quantity: 1 }])));
    expect(answers.filter((answer) => answer.status === 201)).toHaveLength(20);
    expect(answers.every((answer) => answer.status === 201 || answer.status === 409)).toBe(true);
    expect((await harness.call('GET', `/v1/skus/${a}`)).body).toMatchObject({ onHand: 20, reserved: 20, available: 0 });
    expect((await harness.call('GET', `/v1/skus/${b}`)).body).toMatchObject({ onHand: 40, reserved: 20 });
    const run = await harness.call('POST', '/v1/reconcile');
    expect(run.status).toBe(200);
    expect(run.body).toMatchObject({ skusOutOfAgreement: 0, skusFailed: 0 });
  }, 30_000);
});

describe('flash-sale guards on a Redis Cluster: the steps between slots', () => {
  const customerReserve = (lines: Array<{ sku: string; quantity: number }>, customerId: string, extra: Record<string, unknown> = {}) =>
    harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines, customerId, ...extra } });
  async function limitedSku(onHand: number, perCustomerLimit: number): Promise<string> {
    const sku = `CG-${randomBytes(4).toString('hex')}`;
    expect((await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand, perCustomerLimit } })).status).toBe(200);
    return sku;
  }
  const entriesOf = (customerId: string) => harness.stockhold.redis.hgetall(harness.stockhold.keys.customerEntries('shop-a', customerId));
  /** A one-unit cart (hold ttl 1 s) of a new customer on a SKU limited to 1, confirmed (202) with the worker held back before its commit. */
  async function confirmedWithCommitsHeld(): Promise<{ sku: string; customer: string; made: { body: any }; letCommitsGo: () => void }> {
    const sku = await limitedSku(100, 1);
    const customer = `u-${randomBytes(3).toString('hex')}`;
    const made = await customerReserve([{ sku, quantity: 1 }], customer, { ttlSeconds: 1 });
    const letCommitsGo = holdBackCommits();
    const confirmed = await harness.call('POST', `/v1/reservations/${made.body.id}/confirm`, { as: 'checkout' });
    if (confirmed.status !== 202) letCommitsGo();
    expect(confirmed.status).toBe(202);
    return { sku, customer, made, letCommitsGo };
  }
  /** Holds the worker back before it applies a commit (the latch on applyEntries) until the returned function is called. */
  function holdBackCommits(): () => void {
    let release: () => void = () => undefined;
    const heldBack = new Promise<void>((resolve) => { release = resolve; });
    harness.stockhold.scripts.latch = async (name) => {
      if (name === 'applyEntries') await heldBack;
    };
    return () => {
      release();
      harness.stockhold.scripts.latch = undefined;
    };
  }

  it('a limit lowered between the read of the limits and the hold: the hold refuses, the cart reads it again and is counted against the new limit', async () => {
    const sku = await limitedSku(100, 5);
    const customer = `u-${randomBytes(3).toString('hex')}`;
    expect((await customerReserve([{ sku, quantity: 2 }], customer)).status).toBe(201);
    const scripts = harness.stockhold.scripts;
    let lowered = false;
    scripts.latch = async (name) => {
      if (name !== 'holdLines' || lowered) return;
      lowered = true;
      scripts.latch = undefined;
      // The worst moment: the customer step counted 2 + 2 against 5 and admitted the cart.
      expect((await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 100, perCustomerLimit: 3 } })).status).toBe(200);
    };
    try {
      const refused = await customerReserve([{ sku, quantity: 2 }], customer);
      expect(lowered).toBe(true);
      expect(refused.status).toBe(409);
      expect(refused.body).toMatchObject({ code: 'customer_limit_exceeded', sku, limit: 3, held: 2 });
    } finally {
      scripts.latch = undefined;
    }
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toMatchObject({ reserved: 2, perCustomerLimit: 3 });
    expect(Object.keys(await entriesOf(customer))).toHaveLength(1);
  }, 30_000);

  it('a confirm whose hold expires between the customer\'s pin and the holds\' pins: expired, holds and allowance given back', async () => {
    const sku = await limitedSku(100, 1);
    const customer = `u-${randomBytes(3).toString('hex')}`;
    const made = await customerReserve([{ sku, quantity: 1 }], customer, { ttlSeconds: 1 });
    expect(made.status).toBe(201);
    const scripts = harness.stockhold.scripts;
    scripts.latch = async (name) => {
      if (name !== 'pinLines') return;
      scripts.latch = undefined;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(made.body.expiresAt) - Date.now()) + 100));
    };
    try {
      const confirmed = await harness.call('POST', `/v1/reservations/${made.body.id}/confirm`, { as: 'checkout' });
      expect(confirmed.status).toBe(410);
      expect(confirmed.body.code).toBe('reservation_expired');
    } finally {
      scripts.latch = undefined;
    }
    expect(await entriesOf(customer)).toEqual({});
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.reserved).toBe(0);
    expect((await customerReserve([{ sku, quantity: 1 }], customer)).status).toBe(201);
  }, 30_000);

  it('counts a confirmed cart until its commit, and gives the allowance back once the worker committed it', async () => {
    // Held back from the worker until the hold's expiry has passed: confirmed, it still counts.
    const { sku, customer, made, letCommitsGo } = await confirmedWithCommitsHeld();
    try {
      expect(Object.values(await entriesOf(customer))).toEqual([expect.stringMatching(/^f\|/)]);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(made.body.expiresAt) - Date.now()) + 100));
      expect((await customerReserve([{ sku, quantity: 1 }], customer)).body).toMatchObject({ code: 'customer_limit_exceeded', held: 1 });
    } finally {
      letCommitsGo();
    }
    let status = '';
    for (let polls = 0; polls < 200 && status !== 'committed'; polls += 1) {
      status = (await harness.call('GET', `/v1/reservations/${made.body.id}`, { as: 'checkout' })).body.status;
      if (status !== 'committed') await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(status).toBe('committed');
    expect(await entriesOf(customer)).toEqual({});
    expect((await customerReserve([{ sku, quantity: 1 }], customer)).status).toBe(201);
  }, 30_000);

  it('an entry whose worker died before forgetting it (the record committed) is found ended by the next refused admission and forgotten; one still confirmed is not', async () => {
    const sku = await limitedSku(100, 1);
    const customer = `u-${randomBytes(3).toString('hex')}`;
    const made = await customerReserve([{ sku, quantity: 1 }], customer);
    const confirmed = await harness.call('POST', `/v1/reservations/${made.body.id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=15' } });
    expect(confirmed.body.status).toBe('committed');
    const key = harness.stockhold.keys.customerEntries('shop-a', customer);
    expect(await harness.stockhold.redis.hgetall(key)).toEqual({});
    // The worker's last step lost: its entry back as a confirmed one.
    await harness.stockhold.redis.hset(key, made.body.id, `f|${Date.parse(made.body.expiresAt)}|${sku}:1`);
    expect((await customerReserve([{ sku, quantity: 1 }], customer)).status).toBe(201);
    expect(Object.keys(await harness.stockhold.redis.hgetall(key))).not.toContain(made.body.id);
    // An entry whose record is still pending counts: refused, and kept.
    expect((await customerReserve([{ sku, quantity: 1 }], customer)).body).toMatchObject({ code: 'customer_limit_exceeded', held: 1 });
    expect(Object.keys(await harness.stockhold.redis.hgetall(key))).toHaveLength(1);
  }, 30_000);

  it('an admitted cart whose entry is gone (a failover, a stalled attempt) is counted again at its confirm: refused when the cap is full, its units back', async () => {
    const sku = await limitedSku(100, 1);
    const customer = `u-${randomBytes(3).toString('hex')}`;
    const first = await customerReserve([{ sku, quantity: 1 }], customer);
    expect(first.status).toBe(201);
    // The entry lost, as a primary killed before its replica had it would lose it.
    await harness.stockhold.redis.hdel(harness.stockhold.keys.customerEntries('shop-a', customer), first.body.id);
    const second = await customerReserve([{ sku, quantity: 1 }], customer);
    expect(second.status).toBe(201);
    const refused = await harness.call('POST', `/v1/reservations/${first.body.id}/confirm`, { as: 'checkout' });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'customer_limit_exceeded', sku, limit: 1, held: 1 });
    expect((await harness.call('GET', `/v1/reservations/${first.body.id}`, { as: 'checkout' })).body.status).toBe('expired');
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toMatchObject({ reserved: 1 });
    // The one that fits is confirmed as ever.
    expect((await harness.call('POST', `/v1/reservations/${second.body.id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=15' } })).body.status).toBe('committed');
  }, 30_000);

  it('a retried confirm puts back the confirmed entry a failover may have lost, before it answers', async () => {
    const { sku, customer, made, letCommitsGo } = await confirmedWithCommitsHeld();
    try {
      const key = harness.stockhold.keys.customerEntries('shop-a', customer);
      // The pin lost: the promoted replica had the entry pending, and its expiry passes.
      await harness.stockhold.redis.hset(key, made.body.id, `p|${Date.parse(made.body.expiresAt)}|${sku}:1`);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(made.body.expiresAt) - Date.now()) + 100));
      expect((await harness.call('POST', `/v1/reservations/${made.body.id}/confirm`, { as: 'checkout' })).status).toBe(202);
      expect(await harness.stockhold.redis.hget(key, made.body.id)).toMatch(/^f\|/);
      expect((await customerReserve([{ sku, quantity: 1 }], customer)).body).toMatchObject({ code: 'customer_limit_exceeded', held: 1 });
    } finally {
      letCommitsGo();
    }
  }, 30_000);

  it('a confirm that died after pinning the entry: past the grace, the next refused admission expires the record and forgets the entry', async () => {
    const sku = await limitedSku(100, 1);
    const customer = `u-${randomBytes(3).toString('hex')}`;
    const made = await customerReserve([{ sku, quantity: 1 }], customer);
    const scripts = harness.stockhold.scripts;
    // The confirm pins the customer's entry, then loses Redis before the holds (as a crash would).
    scripts.latch = async (name) => {
      if (name !== 'pinLines') return;
      scripts.latch = undefined;
      throw errors.backendUnavailable('redis', new Error('connection lost here'));
    };
    try {
      expect((await harness.call('POST', `/v1/reservations/${made.body.id}/confirm`, { as: 'checkout' })).status).toBe(503);
    } finally {
      scripts.latch = undefined;
    }
    const key = harness.stockhold.keys.customerEntries('shop-a', customer);
    expect(await harness.stockhold.redis.hget(key, made.body.id)).toMatch(/^f\|/);
    // Within the grace the record is left to its confirm: the entry counts.
    expect((await customerReserve([{ sku, quantity: 1 }], customer)).body).toMatchObject({ code: 'customer_limit_exceeded' });
    // Past it (the record's expiry moved back instead of waiting a minute):
    await patchRecord(harness.stockhold.redis, harness.stockhold.keys, made.body.id, { ex: Date.now() - stalledConfirmGraceMs - 1000 });
    expect((await customerReserve([{ sku, quantity: 1 }], customer)).status).toBe(201);
    expect((await readRecord(harness.stockhold.redis, harness.stockhold.keys, made.body.id))?.s).toBe('expired');
    expect(await harness.stockhold.redis.hget(key, made.body.id)).toBeNull();
  }, 30_000);
});
