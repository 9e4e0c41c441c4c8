// Proves REDIS_CONFIRM_REPLICAS against a real primary and replica (two private redis-servers,
// the second `--replicaof` the first): a confirmation is answered only once the replica has it;
// with the replica down the confirm answers 503 with Retry-After (the confirmation stands on the
// primary, nothing is lost), and the retry answers once the replica is back and has caught up.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateRedis } from '../chaos/servers';
import { createSku, idempotencyKey, startHarness, uniqueName, type Harness } from './support/harness';
import { readRecord } from './support/records';

let primary: PrivateRedis;
let replica: PrivateRedis;
let harness: Harness;

async function linkUp(): Promise<void> {
  const probe = new Redis(replica.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  probe.on('error', () => undefined);
  try {
    const deadline = Date.now() + 15_000;
    while (!/master_link_status:up/.test(await probe.info('replication').catch(() => ''))) {
      if (Date.now() > deadline) throw new Error('the replica did not link up');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    probe.disconnect();
  }
}

beforeAll(async () => {
  primary = await PrivateRedis.start();
  replica = await PrivateRedis.start({ extraArgs: ['--replicaof', '127.0.0.1', String(primary.port)] });
  await linkUp();
  harness = await startHarness({ REDIS_URL: primary.url, REDIS_CONFIRM_REPLICAS: '1', REDIS_CONFIRM_WAIT_MS: '300', REDIS_COMMAND_TIMEOUT_MS: '2000' });
}, 60_000);

afterAll(async () => {
  await harness?.close();
  await replica?.remove();
  await primary?.remove();
});

const reserve = async (sku: string) => {
  const created = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } });
  expect(created.status).toBe(201);
  return created.body.id as string;
};
const confirm = (id: string) => harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout' });

describe('REDIS_CONFIRM_REPLICAS=1', () => {
  it('answers a confirm once the replica has it; 503 while it cannot; the retry answers once it can', async () => {
    const sku = await createSku(harness, 5, 'WAIT');
    const first = await reserve(sku);
    expect((await confirm(first)).status).toBe(202);
    // The replica had it when the answer went out.
    const fromReplica = new Redis(replica.port, '127.0.0.1');
    try {
      expect((await readRecord(fromReplica, harness.stockhold.keys, first))?.s).toBe('confirmed');
    } finally {
      fromReplica.disconnect();
    }

    await replica.kill();
    const second = await reserve(sku);
    const refused = await confirm(second);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.body).toMatchObject({ code: 'backend_unavailable', replicasWanted: 1, replicasAcknowledged: 0 });
    // The confirmation stands on the primary: nothing lost, nothing to undo.
    expect((await harness.call('GET', `/v1/reservations/${second}`, { as: 'checkout' })).body.status).toBe('confirmed');
    // Retried while the replica is still down: the same answer, nothing changes.
    expect((await confirm(second)).status).toBe(503);

    await replica.start();
    await linkUp();
    const retried = await confirm(second);
    expect(retried.status).toBe(202);
    expect(retried.body.status).toBe('confirmed');
  }, 60_000);
});

describe('REDIS_CONFIRM_REPLICAS=1 and stock decreases', () => {
  // The interleaving it closes: a decrease stages its debit, the ledger commits, the primary dies
  // before its replica has the debit, and the promoted replica offers the units the ledger no
  // longer has (until the entry is applied): the ledger then rejects an acknowledged confirm.
  it('commits a decrease only once its debit is on the replica: 503 and nothing changed while it cannot', async () => {
    const sku = await createSku(harness, 10, 'WAITD');
    expect((await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 8 } })).status).toBe(200);
    await replica.kill();
    try {
      const refused = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 5 } });
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(refused.body).toMatchObject({ code: 'backend_unavailable', replicasWanted: 1, replicasAcknowledged: 0 });
      // Nothing changed: the ledger, Redis (no debit left pending: all 8 on offer).
      expect(Number((await harness.stockhold.knex('skus').first('on_hand').where({ sku })).on_hand)).toBe(8);
      expect((await harness.call('GET', `/v1/skus/${sku}`, { as: 'checkout' })).body).toMatchObject({ onHand: 8, available: 8 });
      // An increase is not held up: it is applied only after its COMMIT (losing it undersells).
      expect((await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 9 } })).status).toBe(200);
    } finally {
      await replica.start();
      await linkUp();
    }
    const retried = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 5 } });
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ onHand: 5 });
  }, 60_000);

  it('a striped SKU\'s decrease stages a debit on several stripes; refused, it releases every one of them by id', async () => {
    const sku = uniqueName('WAITS');
    expect((await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 30, stripes: 3 } })).status).toBe(200);
    await replica.kill();
    try {
      // 30 -> 12 takes 6 units from each of the three stripes: three debits, then the WAIT fails.
      const refused = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 12 } });
      expect(refused.status).toBe(503);
      expect(refused.body).toMatchObject({ code: 'backend_unavailable', replicasWanted: 1, replicasAcknowledged: 0 });
      expect((await harness.call('GET', `/v1/skus/${sku}`, { as: 'checkout' })).body).toMatchObject({ onHand: 30, reserved: 0, available: 30, stripes: 3 });
      const rows: Array<{ on_hand: string }> = await harness.stockhold.knex('skus').select('on_hand').whereRaw("split_part(sku, '~', 1) = ?", [sku]);
      expect(rows.map((row) => Number(row.on_hand)).sort()).toEqual([10, 10, 10]);
      // Every stripe still offers all its units: no debit was left staged.
      const created = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 30 }] } });
      expect(created.status).toBe(201);
    } finally {
      await replica.start();
      await linkUp();
    }
  }, 60_000);
});
