// The HTTP contract on a real Redis Cluster (three primaries, three replicas, started here): the
// same service, with carts held slot by slot (lib/reservations/cart-across-slots.ts), BullMQ on
// the hash-tagged prefix, confirms answered after WAIT saw a replica. The configuration still
// refuses REDIS_CLUSTER_NODES (the suite does not run on both backends yet): the harness sets it.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateRedisCluster } from '../chaos/servers';
import { slotOf } from '../lib/redis/slots';
import { stripeSkus } from '../lib/stock/stripes';
import { idempotencyKey, startHarness, type Harness } from './support/harness';

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
  // The per-customer cap reads a customer's reservations in one script (lua/includes/guards.lua):
  // one Redis only, so a cluster refuses it rather than leave it unenforced.
  it('refuses a per-customer limit with 400 (single Redis only), changing nothing', async () => {
    const sku = `CAP-${Date.now().toString(36)}`;
    const refused = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 10, perCustomerLimit: 2 } });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: 'validation_failed', errors: [{ field: 'body.perCustomerLimit' }] });
    expect((await harness.call('GET', `/v1/skus/${sku}`)).status).toBe(404);
  });

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
