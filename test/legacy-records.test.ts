// Upgrading from the record layout before the shared buckets (a hash per reservation at
// `res:{<id>}`): until `npm run migrate:records` has run, such a reservation answers 503
// `record_migration_pending` (never a 404 that would make a checkout give up); the migration moves
// pending ones with their time left, forgets confirmed ones the ledger decided meanwhile (the
// ledger answers), rewrites the customer index, and a second run changes nothing.
// The old records are written here as the earlier version wrote them: a reservation made through
// the API has its record taken out of its bucket and written back as a hash of its own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateLegacyRecords } from '../lib/reservations/legacy-records';
import { finishReservation } from '../lib/scripts/finish-reservation';
import { createSku, idempotencyKey, startHarness, type Harness } from './support/harness';
import { dropRecord, readRecord } from './support/records';

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness({ COMMIT_BATCH_WAIT_MS: '2' });
});
afterAll(async () => {
  await harness?.close();
});

const reserve = (sku: string, quantity: number, customerId?: string) =>
  harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity }], ...(customerId === undefined ? {} : { customerId }) } });

/** Takes the record out of its bucket and writes it as the earlier version kept it; returns its fields. */
async function makeLegacy(id: string, overrides: Record<string, string> = {}, ttlMs: number | 'none' = 3_600_000): Promise<Record<string, string>> {
  const { redis, keys } = harness.stockhold;
  const record = await readRecord(redis, keys, id);
  expect(record).toBeDefined();
  await dropRecord(redis, keys, id);
  // The old layout: no fence field until confirmed, `cf` once confirmed.
  const legacy: Record<string, string> = {
    s: record!.s!, c: record!.c!, ca: record!.ca!, ex: record!.ex!, l: record!.l!,
    ...(record!.u === undefined ? {} : { u: record!.u }), ...(record!.v === '1' ? {} : { v: record!.v! }), ...(record!.cf === undefined ? {} : { cf: record!.cf }), ...overrides,
  };
  await redis.hset(keys.legacyReservation(id), legacy);
  if (ttlMs !== 'none') await redis.pexpire(keys.legacyReservation(id), ttlMs);
  return legacy;
}

const migrate = () => {
  const { redis, scripts, keys, knex, config } = harness.stockhold;
  return migrateLegacyRecords({ redis, scripts, keys, knex, prefix: config.redisKeyPrefix });
};

describe('npm run migrate:records', () => {
  it('answers 503 before the migration, moves pending and settled records with their time left, forgets the ones the ledger decided, and runs again as a no-op', async () => {
    const { redis, keys } = harness.stockhold;
    const sku = await createSku(harness, 10);
    // A: pending, of a customer (the customer index keeps the old member).
    const pending = await reserve(sku, 2, 'cust-legacy');
    expect(pending.status).toBe(201);
    const pendingId = pending.body.id as string;
    await makeLegacy(pendingId, {}, 3_600_000);
    // Its customer index as the earlier version wrote it: the record key as the member. (On a
    // cluster the guards keep no index; the migration rewrites what it finds all the same.)
    const customerKey = keys.customer('shop-a', 'cust-legacy');
    await redis.multi().del(customerKey).zadd(customerKey, Date.parse(pending.body.expiresAt), keys.legacyReservation(pendingId)).exec();
    // B: confirmed and committed by the ledger, while the old record still said "confirmed"
    // (the job's finishCommit found no record in the new layout).
    const committed = await reserve(sku, 3);
    const stop = await harness.startWorker();
    const confirmed = await harness.call('POST', `/v1/reservations/${committed.body.id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=10' } });
    await stop();
    expect(confirmed.body.status).toBe('committed');
    const committedId = committed.body.id as string;
    await makeLegacy(committedId, { s: 'confirmed', v: '2', cf: String(Date.now()) }, 'none');

    // Before the migration: not a 404, a retry later.
    const early = await harness.call('GET', `/v1/reservations/${pendingId}`, { as: 'checkout' });
    expect(early.status).toBe(503);
    expect(early.body).toMatchObject({ code: 'record_migration_pending', status: 503 });
    expect(early.headers.get('retry-after')).toBe('5');
    expect((await harness.call('POST', `/v1/reservations/${pendingId}/confirm`, { as: 'checkout' })).status).toBe(503);
    // B reads from the ledger already (it has a ledger row).
    expect((await harness.call('GET', `/v1/reservations/${committedId}`, { as: 'checkout' })).body.status).toBe('committed');

    expect(await migrate()).toEqual({ imported: 2, alreadyThere: 0, forgotten: 1, customerMembers: 1, truncated: false });
    expect([await redis.exists(keys.legacyReservation(pendingId)), await redis.exists(keys.legacyReservation(committedId))]).toEqual([0, 0]);
    // A: pending again, kept at least as long as its old key had left, releasable, units back.
    expect(await readRecord(redis, keys, pendingId)).toMatchObject({ s: 'pending', c: 'shop-a', u: 'cust-legacy', l: `${sku}:2` });
    expect(await redis.pttl(keys.reservation(pendingId))).toBeGreaterThan(3_600_000 - 60_000);
    expect((await harness.call('GET', `/v1/reservations/${pendingId}`, { as: 'checkout' })).body).toMatchObject({ status: 'pending', customerId: 'cust-legacy' });
    expect(await redis.zrange(customerKey, 0, -1)).toEqual([`${keys.reservation(pendingId)}#${pendingId}`]);
    // B: forgotten by Redis, answered by the ledger; its bucket does not stay without expiry.
    expect(await readRecord(redis, keys, committedId)).toBeUndefined();
    expect((await harness.call('GET', `/v1/reservations/${committedId}`, { as: 'checkout' })).body.status).toBe('committed');
    expect(await redis.hexists(keys.reservation(committedId), '~')).toBe(0);
    const released = await harness.call('DELETE', `/v1/reservations/${pendingId}`, { as: 'checkout' });
    expect(released.body.status).toBe('released');
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toMatchObject({ onHand: 7, reserved: 0, available: 7 });

    expect(await migrate()).toEqual({ imported: 0, alreadyThere: 0, forgotten: 0, customerMembers: 0, truncated: false });
  });

  it('keeps a confirmed record the ledger has not decided, and its commit job marks it committed afterwards', async () => {
    const { redis, keys } = harness.stockhold;
    const sku = await createSku(harness, 5);
    const created = await reserve(sku, 1);
    const id = created.body.id as string;
    // Confirmed with no worker running: its commit job waits in the queue, the ledger has no row.
    expect((await harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout' })).status).toBe(202);
    await makeLegacy(id, {}, 'none');
    expect(await migrate()).toEqual({ imported: 1, alreadyThere: 0, forgotten: 0, customerMembers: 0, truncated: false });
    expect(await readRecord(redis, keys, id)).toMatchObject({ s: 'confirmed', v: '2' });
    expect(await redis.pttl(keys.reservation(id))).toBe(-1);
    // The bucket's count took it: the commit that follows marks it committed and gives the
    // bucket its expiry back.
    const stop = await harness.startWorker();
    try {
      expect((await harness.stockhold.commits.waitFor(id, (reservation) => reservation.status === 'committed', 10_000))?.status).toBe('committed');
      expect(await readRecord(redis, keys, id)).toMatchObject({ s: 'committed', v: '2' });
      expect(await redis.pttl(keys.reservation(id))).toBeGreaterThan(0);
    } finally {
      await stop();
    }
  });

  // The migration's one step across Redis and Postgres: import, ask the ledger, forget. The worst
  // thing between the ledger's answer and the forget: a re-delivered commit job marks the freshly
  // imported record committed. Forced with the script latch: the forget must then change nothing.
  it('a commit landing between the ledger\'s answer and the forget leaves the committed record as it is', async () => {
    const { redis, keys, scripts } = harness.stockhold;
    const sku = await createSku(harness, 5);
    const created = await reserve(sku, 1);
    const id = created.body.id as string;
    const stop = await harness.startWorker();
    expect((await harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=10' } })).body.status).toBe('committed');
    await stop();
    await makeLegacy(id, { s: 'confirmed', v: '2', cf: String(Date.now()) }, 'none');
    scripts.latch = async (name, _keys, args) => {
      if (name !== 'forgetRecord' || args[0] !== id) return;
      // The re-delivered job's last step, on the record the import just wrote.
      expect(await finishReservation(scripts, keys, 'commit', id, 2, 3_600_000)).toEqual({ kind: 'finished' });
    };
    try {
      expect(await migrate()).toMatchObject({ imported: 1, forgotten: 0 });
    } finally {
      scripts.latch = undefined;
    }
    expect(await readRecord(redis, keys, id)).toMatchObject({ s: 'committed', v: '2' });
    expect(await redis.hexists(keys.reservation(id), '~')).toBe(0);
    expect(await redis.pttl(keys.reservation(id))).toBeGreaterThan(0);
  });

  it('leaves keys that are not old records alone: buckets, replication witnesses, other prefixes', async () => {
    const { redis, keys, config } = harness.stockhold;
    const sku = await createSku(harness, 5);
    const created = await reserve(sku, 1);
    const bucket = keys.reservation(created.body.id);
    const witness = keys.replicationWitness(bucket);
    await redis.set(witness, '1', 'PX', 60_000);
    const foreign = `${config.redisKeyPrefix}res:{not-a-reservation-id}`;
    await redis.hset(foreign, 's', 'pending');
    expect(await migrate()).toEqual({ imported: 0, alreadyThere: 0, forgotten: 0, customerMembers: 0, truncated: false });
    expect([await redis.exists(bucket), await redis.exists(witness), await redis.exists(foreign)]).toEqual([1, 1, 1]);
    await redis.del(foreign);
    await redis.del(witness);
  });
});
