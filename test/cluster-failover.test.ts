// A failover under traffic on a real Redis Cluster (three primaries, three replicas): the primary
// that owns a hot SKU is killed with SIGKILL while 16 clients reserve and confirm; its replica takes
// over. Checked after: no acknowledged confirm is lost (each reaches the ledger; the reconciler
// re-queues a commit job that died with the primary), nothing is oversold (the ledger's on-hand
// never below zero, and Redis agrees with it), and the cost is printed: holds acknowledged in the
// window that were lost, and how long until requests succeeded again.
import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateRedisCluster } from '../chaos/servers';
import { slotOf } from '../lib/redis/slots';
import { idempotencyKey, startHarness, type Harness } from './support/harness';

let cluster: PrivateRedisCluster;
let harness: Harness;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  // AOF on every node, so that a node killed and started again comes back with what it had.
  cluster = await PrivateRedisCluster.start({ primaries: 3, replicasPerPrimary: 1, appendOnly: true });
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
  // Asked of every node until one knows it: after a failover the nodes' views converge in a while.
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const nodes = String(await harness.stockhold.redis.cluster('NODES')).trim().split('\n').map((line) => line.split(' '));
    const primary = nodes.find((fields) => fields[1]!.split('@')[0]!.endsWith(`:${primaryPort}`));
    const replica = nodes.find((fields) => fields[2]!.includes('slave') && !fields[2]!.includes('fail') && fields[3] === primary?.[0]);
    if (replica !== undefined) return Number(replica[1]!.split('@')[0]!.split(':').at(-1));
    await sleep(100);
  }
  throw new Error(`no replica of ${primaryPort} known within 10 s`);
}


/** A SKU of 10 units, the port of its primary, and a one-unit reservation whose record lives on another primary. */
async function skuWithReservationApart(prefix: string, ttlSeconds = 900): Promise<{ sku: string; skuPrimary: number; id: string }> {
  const sku = `${prefix}-${randomBytes(4).toString('hex')}`;
  expect((await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 10 } })).status).toBe(200);
  return { sku, skuPrimary: await ownerPort(harness.stockhold.keys.skuState(sku)), id: await reservationApart(sku, ttlSeconds) };
}

/**
 * A manual reconcile run, asked again (as an operator would, after its Retry-After) while another
 * run holds the reconciler's lease: on a loaded machine a scheduled run was still going once.
 */
async function reconcileNow(): Promise<{ status: number; body: any }> {
  for (let attempt = 0; attempt < 60; attempt += 1) {
    const run = await harness.call('POST', '/v1/reconcile');
    if (!(run.status === 409 && run.body?.code === 'reconcile_in_progress')) return run;
    await sleep(500);
  }
  const leaseKey = `${harness.config.redisKeyPrefix}reconcile:lease`;
  const [holder, pttl] = await Promise.all([harness.stockhold.redis.get(leaseKey), harness.stockhold.redis.pttl(leaseKey)]);
  throw new Error(`the reconciler stayed busy for 30 s (lease held by ${holder ?? 'nobody'}, ${pttl} ms left)`);
}

/** A one-unit reservation whose record lives on another primary than its SKU. */
async function reservationApart(sku: string, ttlSeconds = 900): Promise<string> {
  const skuPrimary = await ownerPort(harness.stockhold.keys.skuState(sku));
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const created = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }], ttlSeconds } });
    expect(created.status).toBe(201);
    if ((await ownerPort(harness.stockhold.keys.reservation(created.body.id))) !== skuPrimary) return created.body.id as string;
  }
  throw new Error('no reservation whose record lives on another primary than its SKU in 50 tries');
}

async function roleOf(port: number): Promise<string> {
  const probe = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  probe.on('error', () => undefined);
  try {
    return String(((await probe.call('ROLE')) as unknown[])[0]);
  } finally {
    probe.disconnect();
  }
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
}

describe('failover', () => {
  it('kill -9 of a primary under traffic loses no acknowledged confirm and oversells nothing', async () => {
    // First in this file, on a whole cluster: a primary whose replica was stopped, killed or failed
    // over a moment before was seen to be replaced after 7 s, or not within 20 s.
    const skus = Array.from({ length: 4 }, () => `FO-${randomBytes(4).toString('hex')}`);
    for (const sku of skus) expect((await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 10_000 } })).status).toBe(200);
    const victimPort = await ownerPort(harness.stockhold.keys.skuState(skus[0]!));
    const victim = cluster.nodes.find((node) => node.port === victimPort)!;
    const heirPort = await replicaPort(victimPort);

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
    let promotedAt = 0;
    void (async () => {
      for (let waited = 0; waited < 60_000 && promotedAt === 0; waited += 100) {
        if ((await roleOf(heirPort).catch(() => '')) === 'master') promotedAt = Date.now();
        else await sleep(100);
      }
    })();
    // Traffic goes on until the killed primary's SKU is served again, then 1 s more. Usually 2–5 s;
    // 9 s with the machine's cores busy, and a CI run under load saw more than 20 s: up to 45 s.
    for (let waited = 0; waited < 45_000 && victimServedAgain === 0; waited += 100) await sleep(100);
    await sleep(1000);
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
        `the killed primary's SKU served again after ${victimServedAgain === 0 ? 'never (within the run)' : `${victimServedAgain - killedAt} ms`} (its replica a primary after ${promotedAt === 0 ? 'never' : `${promotedAt - killedAt} ms`})\n`,
    );
    // What the replica said, when it did not take over: the cause is in its log (votes refused,
    // data too old, no majority), not in Stockhold's.
    if (victimServedAgain === 0) {
      for (const node of cluster.nodes.filter((candidate) => candidate.port !== victimPort)) {
        process.stdout.write(`--- redis ${node.port}${node.port === heirPort ? ' (the killed primary\'s replica)' : ''}:\n${node.logTail(node.port === heirPort ? 40 : 12)}\n`);
      }
    }
    let whole = false;
    try {
      expect(committed, 'acknowledged confirms in the ledger').toBe(acknowledgedConfirms.length);
      expect(victimServedAgain, 'the replica took over within the run').toBeGreaterThan(0);

      // Nothing oversold: the ledger never below zero (its CHECK), and Redis agrees with it once
      // the reconciler has run.
      for (const sku of skus) {
        const row = await harness.stockhold.knex('skus').first('on_hand').where({ sku });
        expect(Number(row.on_hand)).toBeGreaterThanOrEqual(0);
      }
      const run = await reconcileNow();
      const again = await reconcileNow();
      expect(run.status).toBe(200);
      expect(again.body.skusOutOfAgreement).toBe(0);
    } finally {
      // The killed primary back (as a replica of the one that took over), so the tests after this
      // one find every shard with a replica, whatever this one found.
      await victim.start();
      whole = await cluster.whole(30_000);
    }
    expect(whole, 'the cluster whole again').toBe(true);
  }, 200_000);
});

describe('a confirm waits for the replicas of every primary it wrote', () => {
  // The worst interleaving without it: the confirm pins the cart's hold on the SKU's primary and
  // writes the record on another; WAIT on the record's primary alone answers; the SKU's primary
  // dies before its replica has the pin, and the promoted replica has the hold as pending: it
  // expires, its units are sold again, and the acknowledged confirm is rejected by the ledger.
  // Forced here by stopping (SIGSTOP) the replica of the SKU's primary only.
  it('answers 503 while the SKU primary\'s replica lacks the pin, and 202 once it has it', async () => {
    const { skuPrimary, id } = await skuWithReservationApart('FW');
    const replicaOfSkuPrimary = await replicaPort(skuPrimary);
    const stopped = cluster.nodes.find((node) => node.port === replicaOfSkuPrimary)!;
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

  // Between the pin and the WAIT, the SKU's slot changes owner (a graceful CLUSTER FAILOVER here;
  // a crash in production, which can lose the pin). A WAIT on the new owner says nothing about a
  // write the old one took, and on a connection that sent nothing it answers at once: the slot's
  // owner is compared with the one before the first write.
  it('answers 503 when the SKU\'s slot changed owner between the pin and the WAIT', async () => {
    const { sku, skuPrimary, id } = await skuWithReservationApart('FX');
    const replica = await replicaPort(skuPrimary);
    const scripts = harness.stockhold.scripts;
    scripts.latch = async (name) => {
      if (name !== 'settleRecord') return;
      scripts.latch = undefined;
      const probe = new Redis(replica, '127.0.0.1');
      try {
        await probe.cluster('FAILOVER');
      } finally {
        probe.disconnect();
      }
      await until(async () => (await roleOf(replica)) === 'master' && (await roleOf(skuPrimary)) === 'slave', 'the graceful failover');
      await new Promise<void>((resolve) => (harness.stockhold.redis as Cluster).refreshSlotsCache(() => resolve()));
      await until(async () => (await ownerPort(harness.stockhold.keys.skuState(sku))) === replica, 'the new slot map');
    };
    try {
      const refused = await harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout' });
      // Never acknowledged. Usually the owner check answers (replicasAcknowledged 0); once, in a
      // slow run, another step met the slot move first and answered a plain 503, as safe.
      expect(refused.status, JSON.stringify(refused.body)).toBe(503);
      expect(refused.body, JSON.stringify(refused.body)).toMatchObject({ code: 'backend_unavailable' });
      if ('replicasAcknowledged' in refused.body) expect(refused.body.replicasAcknowledged).toBe(0);
    } finally {
      scripts.latch = undefined;
    }
    // The graceful failover kept the pin: the retry pins again (nothing to do), WAITs on the new
    // owner, whose replica is the old primary, and answers.
    let retried = await harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout' });
    for (let attempt = 0; attempt < 50 && retried.status === 503; attempt += 1) {
      await sleep(100);
      retried = await harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout' });
    }
    expect([200, 202]).toContain(retried.status);
    expect(await cluster.whole(30_000)).toBe(true);
  }, 60_000);

  // The reviewer's interleaving: a confirm answered 503 (the SKU primary's replica is down, so the
  // pin is on the primary only); the primary dies, the replica comes back from its own AOF without
  // the pin and takes over (CLUSTER FAILOVER TAKEOVER), the hold expires. Once the old primary is
  // back as a replica, a WAIT would succeed: the retry must not answer 202 for units it no longer
  // holds, and the worker must not allocate them. (A stopped replica would not do: its socket
  // buffers the stream while it is stopped, and it reads the pin when it resumes.)
  it('a confirm answered 503 whose pin a failover lost is never acknowledged: the worker rejects it (holds lost), allocating nothing', async () => {
    const { sku, skuPrimary, id } = await skuWithReservationApart('FL', 2);
    const replicaPortOfSku = await replicaPort(skuPrimary);
    const replica = cluster.nodes.find((node) => node.port === replicaPortOfSku)!;
    const victim = cluster.nodes.find((node) => node.port === skuPrimary)!;
    await replica.kill();
    expect((await harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout' })).status).toBe(503);
    await victim.kill();
    await replica.start();
    const takeover = new Redis(replica.port, '127.0.0.1');
    try {
      await takeover.cluster('FAILOVER', 'TAKEOVER');
    } finally {
      takeover.disconnect();
    }
    await until(async () => (await roleOf(replica.port)) === 'master', 'the replica promoted without the pin');
    await victim.start();
    expect(await cluster.whole(30_000), 'the old primary back as a synced replica').toBe(true);
    // Past the hold's expiry (2 s from its creation; the failover took longer than that already).
    await sleep(2_200);
    let retried = await harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout' });
    for (let attempt = 0; attempt < 100 && retried.status === 503; attempt += 1) {
      await sleep(100);
      retried = await harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout' });
    }
    expect(retried.status).toBe(409);
    expect(retried.body).toMatchObject({ code: 'reservation_rejected', reason: 'holds_lost_in_failover' });
    const row = await harness.stockhold.knex('reservations').first('status', 'reject_reason').where({ id });
    expect(row).toMatchObject({ status: 'rejected', reject_reason: 'holds_lost_in_failover' });
    expect(await harness.stockhold.knex('ledger_entries').where({ reservation_id: id }).count<{ count: string }[]>('* as count')).toEqual([{ count: '0' }]);
    // Its unit is back on offer (the hold expired and was reclaimed): all 10 less the other tries' holds.
    const view = await harness.call('GET', `/v1/skus/${sku}`, { as: 'checkout' });
    expect(view.body.onHand).toBe(10);
  }, 90_000);
});
