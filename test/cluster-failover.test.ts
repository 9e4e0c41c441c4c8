// A failover under traffic on a real Redis Cluster (three primaries, three replicas): the primary
// that owns a hot SKU is killed with SIGKILL while 16 clients reserve and confirm; its replica takes
// over. Checked after: no acknowledged confirm is lost (each reaches the ledger; the reconciler
// re-queues a commit job that died with the primary), nothing is oversold (the ledger's on-hand
// never below zero, and Redis agrees with it), and the cost is printed: holds acknowledged in the
// window that were lost, and how long until requests succeeded again.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateRedisCluster } from '../chaos/servers';
import { slotOf } from '../lib/redis/slots';
import { idempotencyKey, startHarness, type Harness } from './support/harness';

let cluster: PrivateRedisCluster;
let harness: Harness;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  cluster = await PrivateRedisCluster.start({ primaries: 3, replicasPerPrimary: 1 });
  harness = await startHarness(
    { COMMIT_BATCH_WAIT_MS: '1', RECONCILE_COMMIT_GRACE_MS: '1000', REDIS_CONFIRM_WAIT_MS: '500', REDIS_COMMAND_TIMEOUT_MS: '1500', COMMIT_BACKOFF_BASE_MS: '50', COMMIT_BACKOFF_MAX_MS: '500' },
    { ownDatabase: true, clusterSeeds: cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })) },
  );
  await harness.startWorker();
}, 60_000);

/** Closing waits at most this long: a BullMQ worker whose blocking connection was on the killed primary can take longer to let go. */
const closeWaitMs = 10_000;

afterAll(async () => {
  if (harness !== undefined) await Promise.race([harness.close().catch(() => undefined), sleep(closeWaitMs)]);
  await cluster?.remove();
}, 30_000);

/** The port of the primary that owns `key`'s slot, asked of the cluster itself. */
async function ownerPort(key: string): Promise<number> {
  const slot = slotOf(key);
  const slots = await harness.stockhold.redis.cluster('SLOTS');
  const range = slots.find(([from, to]) => slot >= from && slot <= to);
  expect(range).toBeDefined();
  return Number(range![2]![1]);
}

/** The port of the replica of the primary on `primaryPort`, asked of the cluster itself. */
async function replicaPort(primaryPort: number): Promise<number> {
  const nodes = String(await harness.stockhold.redis.cluster('NODES')).trim().split('\n').map((line) => line.split(' '));
  const primary = nodes.find((fields) => fields[1]!.split('@')[0]!.endsWith(`:${primaryPort}`));
  const replica = nodes.find((fields) => fields[2]!.includes('slave') && fields[3] === primary![0]);
  expect(replica, `a replica of ${primaryPort}`).toBeDefined();
  return Number(replica![1]!.split('@')[0]!.split(':').at(-1));
}

/**
 * The primary whose replica the first test stopped for a moment. Seen here: when that primary is
 * then killed, its replica is elected after about 7 s instead of 2.4-3 s (the replica was flagged
 * failing a moment ago), so the failover test below kills another one.
 */
let stalledPrimary = 0;

describe('a confirm waits for the replicas of every primary it wrote', () => {
  // The worst interleaving without it: the confirm pins the cart's hold on the SKU's primary and
  // writes the record on another; WAIT on the record's primary alone answers; the SKU's primary
  // dies before its replica has the pin, and the promoted replica has the hold as pending: it
  // expires, its units are sold again, and the acknowledged confirm is rejected by the ledger.
  // Forced here by stopping (SIGSTOP) the replica of the SKU's primary only.
  it('answers 503 while the SKU primary\'s replica lacks the pin, and 202 once it has it', async () => {
    const sku = `FW-${randomBytes(4).toString('hex')}`;
    expect((await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 10 } })).status).toBe(200);
    const skuPrimary = await ownerPort(harness.stockhold.keys.skuState(sku));
    let id = '';
    for (let attempt = 0; attempt < 50 && id === ''; attempt += 1) {
      const created = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } });
      expect(created.status).toBe(201);
      if ((await ownerPort(harness.stockhold.keys.reservation(created.body.id))) !== skuPrimary) id = created.body.id;
    }
    expect(id, 'a reservation whose record lives on another primary than its SKU').not.toBe('');
    const replicaOfSkuPrimary = await replicaPort(skuPrimary);
    const stopped = cluster.nodes.find((node) => node.port === replicaOfSkuPrimary)!;
    stalledPrimary = skuPrimary;
    stopped.pause();
    try {
      const refused = await harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout' });
      expect(refused.status).toBe(503);
      expect(refused.body).toMatchObject({ code: 'backend_unavailable', replicasWanted: 1, replicasAcknowledged: 0 });
    } finally {
      stopped.resume();
    }
    let retried = await harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout' });
    for (let attempt = 0; attempt < 50 && retried.status === 503; attempt += 1) {
      await sleep(100);
      retried = await harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout' });
    }
    // 202 while the commit is on its way, 200 once the worker committed it.
    expect([200, 202]).toContain(retried.status);
    expect(['confirmed', 'committed']).toContain(retried.body.status);
    // The cluster whole again for the next test: the replica linked to its primary.
    const probe = new Redis(replicaOfSkuPrimary, '127.0.0.1');
    try {
      for (let attempt = 0; attempt < 100 && !/master_link_status:up/.test(await probe.info('replication')); attempt += 1) await sleep(100);
    } finally {
      probe.disconnect();
    }
  }, 60_000);
});

describe('failover', () => {
  it('kill -9 of a primary under traffic loses no acknowledged confirm and oversells nothing', async () => {
    let skus = Array.from({ length: 4 }, () => `FO-${randomBytes(4).toString('hex')}`);
    for (let attempt = 0; attempt < 100 && (await ownerPort(harness.stockhold.keys.skuState(skus[0]!))) === stalledPrimary; attempt += 1) skus = [`FO-${randomBytes(4).toString('hex')}`, ...skus.slice(1)];
    for (const sku of skus) expect((await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 10_000 } })).status).toBe(200);
    const victimPort = await ownerPort(harness.stockhold.keys.skuState(skus[0]!));
    const victim = cluster.nodes.find((node) => node.port === victimPort)!;

    const acknowledgedHolds: string[] = [];
    const acknowledgedConfirms: string[] = [];
    let killedAt = 0;
    let firstSuccessAfterKill = 0;
    /** The first hold acknowledged on the killed primary's SKU after the kill: the failover's end. */
    let victimServedAgain = 0;
    let stop = false;
    const clients = Array.from({ length: 16 }, async (_, client) => {
      for (let round = 0; !stop && round < 10_000; round += 1) {
        const lines = round % 2 === 0 ? [{ sku: skus[client % 4]!, quantity: 1 }] : [{ sku: skus[client % 4]!, quantity: 1 }, { sku: skus[(client + 1) % 4]!, quantity: 1 }];
        const sentAt = Date.now();
        const created = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines } }).catch(() => undefined);
        if (created?.status !== 201) {
          await sleep(50);
          continue;
        }
        acknowledgedHolds.push(created.body.id);
        // Counted only for requests sent after the primary was dead (not ones it answered as it died).
        if (killedAt > 0 && sentAt > killedAt && firstSuccessAfterKill === 0) firstSuccessAfterKill = Date.now();
        if (killedAt > 0 && sentAt > killedAt && victimServedAgain === 0 && lines.some((line) => line.sku === skus[0])) victimServedAgain = Date.now();
        for (let attempt = 0; attempt < 20 && !stop; attempt += 1) {
          const confirmed = await harness.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'checkout' }).catch(() => undefined);
          if (confirmed !== undefined && (confirmed.status === 202 || confirmed.status === 200)) {
            acknowledgedConfirms.push(created.body.id);
            break;
          }
          if (confirmed !== undefined && confirmed.status !== 503) break;
          await sleep(100);
        }
      }
    });
    await sleep(2000);
    await victim.kill();
    killedAt = Date.now();
    await sleep(6000);
    stop = true;
    await Promise.all(clients);
    expect(acknowledgedConfirms.length).toBeGreaterThan(50);

    // Every acknowledged confirm reaches the ledger: commit jobs lost with the primary are
    // re-queued by the reconciler (confirmed holds older than the grace period).
    const deadline = Date.now() + 60_000;
    let committed = 0;
    while (Date.now() < deadline) {
      await harness.call('POST', '/v1/reconcile').catch(() => undefined);
      const rows = await harness.stockhold.knex('reservations').whereIn('id', acknowledgedConfirms).andWhere({ status: 'committed' }).count<{ count: string }[]>('* as count');
      committed = Number(rows[0]!.count);
      if (committed === acknowledgedConfirms.length) break;
      await sleep(500);
    }
    const holdsLost = (await Promise.all(acknowledgedHolds.filter((id) => !acknowledgedConfirms.includes(id)).map(async (id) => (await harness.call('GET', `/v1/reservations/${id}`, { as: 'checkout' })).status === 404))).filter(Boolean).length;
    process.stdout.write(
      `failover: ${acknowledgedHolds.length} holds and ${acknowledgedConfirms.length} confirms acknowledged; confirms lost ${acknowledgedConfirms.length - committed}; ` +
        `unconfirmed holds lost with the primary ${holdsLost}; after the kill: first success ${firstSuccessAfterKill === 0 ? 'none' : `${firstSuccessAfterKill - killedAt} ms`} (other primaries), ` +
        `the killed primary's SKU served again after ${victimServedAgain === 0 ? 'never (within the run)' : `${victimServedAgain - killedAt} ms`}\n`,
    );
    expect(committed, 'acknowledged confirms in the ledger').toBe(acknowledgedConfirms.length);
    expect(victimServedAgain, 'the replica took over within the run').toBeGreaterThan(0);

    // Nothing oversold: the ledger never below zero (its CHECK), and Redis agrees with it once
    // the reconciler has run.
    for (const sku of skus) {
      const row = await harness.stockhold.knex('skus').first('on_hand').where({ sku });
      expect(Number(row.on_hand)).toBeGreaterThanOrEqual(0);
    }
    const run = await harness.call('POST', '/v1/reconcile');
    const again = await harness.call('POST', '/v1/reconcile');
    expect(run.status).toBe(200);
    expect(again.body.skusOutOfAgreement).toBe(0);
  }, 120_000);
});
