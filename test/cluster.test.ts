// First steps on a real Redis Cluster (three primaries, three replicas, on loopback ports, joined
// by `redis-cli --cluster create`): the slot arithmetic agrees with the cluster's own, BullMQ runs
// with the hash-tagged prefix (and is refused without it), the per-SKU scripts run there through
// their typed modules, and a script call whose keys span slots is refused before it is sent. What
// is not built yet (a cart across slots) is said in docs/design.md, "Redis Cluster".
import { randomBytes } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateRedisCluster } from '../chaos/servers';
import { loadConfig } from '../lib/config';
import { bullPrefix } from '../lib/queues';
import { createClusterClient, type ClusterNode } from '../lib/redis/connection';
import { redisKeys } from '../lib/redis/keys';
import { loadScripts, ScriptRunner } from '../lib/redis/scripts';
import { inOneSlot, slotOf } from '../lib/redis/slots';
import { holdLines, returnLines, slotGroups, type CartLine } from '../lib/scripts/cart-lines';
import { confirmCartAcrossSlots, createCartAcrossSlots, rejectCartAcrossSlots, releaseCartAcrossSlots, type CartAcrossSlotsCall } from '../lib/reservations/cart-across-slots';
import { abortCart, openRecord, settleRecord } from '../lib/scripts/cart-coordinator';
import { ReservationScript } from '../lib/scripts/create-reservation';
import { readReservation } from '../lib/scripts/reservation-record';
import { inspectSku } from '../lib/scripts/inspect-sku';
import { prepareStockChange } from '../lib/scripts/prepare-stock-change';
import { readSku } from '../lib/scripts/read-sku';

/** No active-holds cap: these carts have no customer (the guards' steps are tested in cluster-api.test.ts). */
const noCap = { activeMax: 0 };

let cluster: PrivateRedisCluster;
let client: Cluster;
let nodes: ClusterNode[];
const prefix = `t:${randomBytes(4).toString('hex')}:`;
const keys = redisKeys(prefix);

beforeAll(async () => {
  cluster = await PrivateRedisCluster.start({ primaries: 3, replicasPerPrimary: 1 });
  nodes = cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port }));
  client = createClusterClient(nodes, { commandTimeoutMs: 2000, autoPipelining: false });
  await client.connect();
}, 60_000);

afterAll(async () => {
  client?.disconnect();
  await cluster?.remove();
});

/** A SKU whose state lives on another slot than `other`'s. */
function skuInAnotherSlot(other: string): string {
  for (let index = 0; index < 100; index += 1) {
    const sku = `SKU-${randomBytes(4).toString('hex')}`;
    if (slotOf(keys.skuState(sku)) !== slotOf(keys.skuState(other))) return sku;
  }
  throw new Error('no SKU in another slot in 100 tries');
}

describe('Redis Cluster', () => {
  it('computes every key slot as the cluster does (hash tags included)', async () => {
    const sku = 'SKU-A';
    const sample = [keys.skuState(sku), keys.skuHolds(sku), keys.skuUnknown(sku), keys.reservation('abc'), keys.idempotency('shop', 'key-1'), `${bullPrefix({ redisKeyPrefix: prefix, redisClusterNodes: nodes })}:commits:wait`, 'plain', '{}x', 'a{}b{c}', '{user1000}.following'];
    for (const key of sample) expect(slotOf(key), key).toBe(Number(await client.cluster('KEYSLOT', key)));
    expect(inOneSlot([keys.skuState(sku), keys.skuHolds(sku), keys.skuUnknown(sku)])).toBe(true);
  });

  it('runs BullMQ with the hash-tagged prefix (one slot per queue), and is refused without it', async () => {
    const tagged = bullPrefix({ redisKeyPrefix: prefix, redisClusterNodes: nodes });
    expect(tagged).toBe(`${prefix}{bull}`);
    const connection = createClusterClient(nodes, { commandTimeoutMs: 5000, autoPipelining: false });
    const workerConnection = new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: null } });
    workerConnection.on('error', () => undefined);
    const queue = new Queue('commits', { connection, prefix: tagged });
    const worker = new Worker('commits', async (job) => ({ doubled: (job.data as { n: number }).n * 2 }), { connection: workerConnection, prefix: tagged });
    const untagged = new Queue('commits', { connection, prefix: `${prefix}bull` });
    untagged.on('error', () => undefined);
    try {
      const job = await queue.add('commit', { n: 21 });
      // Polled, not awaited through QueueEvents: its stream only sees what happens after it reads.
      const deadline = Date.now() + 20_000;
      while ((await queue.getJobState(job.id as string)) !== 'completed' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
      expect((await queue.getJob(job.id as string))?.returnvalue).toEqual({ doubled: 42 });
      await expect(untagged.add('commit', { n: 1 })).rejects.toThrow(/CROSSSLOT|slot/i);
    } finally {
      await worker.close();
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await untagged.close();
      connection.disconnect();
      workerConnection.disconnect();
    }
  }, 30_000);

  it('runs the per-SKU scripts on the cluster through their typed modules', async () => {
    const scripts = new ScriptRunner(client);
    const sku = `SKU-${randomBytes(4).toString('hex')}`;
    // A SKU created at ledger position 1 with 7 on hand: Redis rebuilds its state there.
    expect(await prepareStockChange(scripts, keys, { sku, ledgerSeq: 1, ledgerOnHand: 7, reclaimPerSkuMax: 10, holdsRebuildMax: 10 })).toMatchObject({ kind: 'ready', onHand: 7, reserved: 0 });
    expect(await readSku(scripts, keys, sku, 10)).toMatchObject({ kind: 'found', onHand: 7, reserved: 0, pos: 1 });
    expect(await inspectSku(scripts, keys, { sku, reclaimMax: 10, confirmedMax: 10, dryRun: true })).toMatchObject({ kind: 'found', onHand: 7, pos: 1, holdCount: 0 });
  });

  it('finds a record of the previous layout (a key of its slot derived from the one passed) on the cluster, and keeps it where it is', async () => {
    const compact = new ScriptRunner(client);
    const previous = new ScriptRunner(client, loadScripts(), { recordLayout: 'previous' });
    const id = randomBytes(16).toString('base64url');
    const record = { id, clientId: 'shop', customerId: null, createdAtMs: Date.now(), expiresAtMs: Date.now() + 60_000, lines: [{ sku: 'SKU-1', quantity: 1 }], retentionMs: 60_000, admitted: false };
    expect(await openRecord(previous, keys, record)).toBe(true);
    expect(await client.hkeys(keys.reservationPrevious(id))).toEqual([id]);
    expect(await client.exists(keys.reservation(id))).toBe(0);
    expect(await readReservation(compact, keys, id)).toMatchObject({ status: 'pending', clientId: 'shop' });
    expect(await openRecord(compact, keys, record)).toBe(false);
    expect(await settleRecord(compact, keys, id, { to: 'confirm' })).toMatchObject({ kind: 'confirmed', fence: 2 });
    expect((await client.hkeys(keys.reservationPrevious(id))).sort()).toEqual(['~', id].sort());
    expect(await client.pttl(keys.reservationPrevious(id))).toBe(-1);
    expect(await client.exists(keys.reservation(id))).toBe(0);
    expect(await readReservation(previous, keys, id)).toMatchObject({ status: 'confirmed' });
  });

  it('refuses a script call whose keys span slots before sending it: a cart today spans its record, its idempotency record and its SKUs', async () => {
    const scripts = new ScriptRunner(client);
    const sku = `SKU-${randomBytes(4).toString('hex')}`;
    const other = skuInAnotherSlot(sku);
    const call = {
      id: randomBytes(16).toString('base64url'),
      clientId: 'shop',
      idempotencyKey: 'k-1',
      fingerprint: 'f',
      customerId: null,
      holdTtlMs: 60_000,
      idempotencyTtlMs: 60_000,
      retentionMs: 60_000,
      reclaimPerSkuMax: 10,
    };
    const reserve = new ReservationScript(scripts, keys);
    await expect(reserve.create({ ...call, lines: [{ sku, quantity: 1 }, { sku: other, quantity: 1 }] })).rejects.toThrow(/several slots/);
    await expect(reserve.create({ ...call, lines: [{ sku, quantity: 1 }] })).rejects.toThrow(/several slots/);
    // Nothing reached the cluster.
    expect(await readReservation(scripts, keys, call.id)).toBeUndefined();
    expect(await client.exists(keys.skuHolds(sku))).toBe(0);
  });

  it('holds a cart across slots one slot group at a time: idempotent per group, compensated when another group is short', async () => {
    const scripts = new ScriptRunner(client);
    const a = `SKU-${randomBytes(4).toString('hex')}`;
    const b = skuInAnotherSlot(a);
    for (const [sku, onHand] of [[a, 5], [b, 1]] as const) {
      expect(await prepareStockChange(scripts, keys, { sku, ledgerSeq: 1, ledgerOnHand: onHand, reclaimPerSkuMax: 10, holdsRebuildMax: 10 })).toMatchObject({ kind: 'ready' });
    }
    const cart: CartLine[] = [{ sku: a, quantity: 2 }, { sku: b, quantity: 2 }];
    const groups = slotGroups(keys, cart);
    expect(groups).toHaveLength(2);
    // Whichever slot comes first, make `a`'s group the one held first and `b`'s the short one.
    if (groups[0]![0]!.sku !== a) groups.reverse();
    const reservationId = randomBytes(16).toString('base64url');
    const call = (lines: CartLine[]) => ({ reservationId, expiresAtMs: Date.now() + 60_000, reclaimPerSkuMax: 10, lines });
    expect(await holdLines(scripts, keys, call(groups[0]!))).toMatchObject({ kind: 'held' });
    expect(await holdLines(scripts, keys, call(groups[0]!))).toMatchObject({ kind: 'already-held' });
    // The other slot is short: the first group is given back, once.
    expect(await holdLines(scripts, keys, call(groups[1]!))).toMatchObject({ kind: 'insufficient', lines: [{ sku: b, requested: 2, available: 1 }] });
    expect(await returnLines(scripts, keys, reservationId, groups[0]!, 'keep-pinned')).toBe(2);
    expect(await returnLines(scripts, keys, reservationId, groups[0]!, 'keep-pinned')).toBe(0);
    expect(await readSku(scripts, keys, a, 10)).toMatchObject({ kind: 'found', onHand: 5, reserved: 0 });
    expect(await readSku(scripts, keys, b, 10)).toMatchObject({ kind: 'found', onHand: 1, reserved: 0 });
    expect(await client.zcard(keys.skuHolds(a))).toBe(0);
    // A SKU Redis has no state for is reported, nothing held.
    const unknown = `SKU-${randomBytes(4).toString('hex')}`;
    expect(await holdLines(scripts, keys, call([{ sku: unknown, quantity: 1 }]))).toMatchObject({ kind: 'missing', skus: [unknown] });
    expect(await client.exists(keys.skuHolds(unknown))).toBe(0);
  });

  it('never oversells when 200 carts across two slots race for 20 and 30 units, compensating the short ones', async () => {
    const scripts = new ScriptRunner(client);
    const a = `SKU-${randomBytes(4).toString('hex')}`;
    const b = skuInAnotherSlot(a);
    const stock = new Map([[a, 20], [b, 30]]);
    for (const [sku, onHand] of stock) await prepareStockChange(scripts, keys, { sku, ledgerSeq: 1, ledgerOnHand: onHand, reclaimPerSkuMax: 10, holdsRebuildMax: 10 });
    let held = 0;
    await Promise.all(
      Array.from({ length: 200 }, async (_, index) => {
        const reservationId = `cart-${index}-${randomBytes(4).toString('hex')}`;
        // Half the carts list the SKUs in one order, half in the other: slotGroups takes the slots
        // in one order for all (in opposite orders carts can starve each other: 0 of 200 held).
        const groups = slotGroups(keys, index % 2 === 0 ? [{ sku: a, quantity: 1 }, { sku: b, quantity: 1 }] : [{ sku: b, quantity: 1 }, { sku: a, quantity: 1 }]);
        const done: CartLine[][] = [];
        for (const group of groups) {
          const result = await holdLines(scripts, keys, { reservationId, expiresAtMs: Date.now() + 60_000, reclaimPerSkuMax: 10, lines: group });
          if (result.kind !== 'held') {
            for (const taken of done) await returnLines(scripts, keys, reservationId, taken, 'keep-pinned');
            return;
          }
          done.push(group);
        }
        held += 1;
      }),
    );
    // All or nothing per cart: exactly min(20, 30) carts hold, and every counter equals its holds.
    expect(held).toBe(20);
    for (const [sku, onHand] of stock) {
      const members = await client.zrange(keys.skuHolds(sku), 0, -1);
      expect(members.length, sku).toBe(20);
      expect(await readSku(scripts, keys, sku, 10)).toMatchObject({ kind: 'found', onHand, reserved: 20 });
    }
  });

  it('a command nobody awaits, rejected from a timer after a slot refresh found the client closed, is no unhandled rejection', async () => {
    // The stack seen in the cluster run: DelayQueue -> tryConnection -> "Cluster isn't ready".
    // Forced: a blocking command whose promise nobody holds, its connection killed (ioredis delays
    // it across a slot refresh), the client closed meanwhile.
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', record);
    const own = createClusterClient(cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })), { commandTimeoutMs: 5000, autoPipelining: false });
    try {
      await own.connect();
      const clientName = `delayed-${randomBytes(4).toString('hex')}`;
      await Promise.all(own.nodes('master').map((node) => node.client('SETNAME', clientName)));
      void own.blpop(`{delayed}:${randomBytes(4).toString('hex')}`, 2);
      await new Promise((resolve) => setTimeout(resolve, 100));
      await Promise.all(cluster.nodes.map(async (node) => {
        const killer = new Redis(node.port, '127.0.0.1');
        try {
          const clients = String(await killer.client('LIST')).split('\n').filter((line) => line.includes(`name=${clientName}`));
          for (const line of clients) await killer.client('KILL', 'ID', /id=(\d+)/.exec(line)![1]!).catch(() => 0);
        } finally {
          killer.disconnect();
        }
      }));
      await new Promise((resolve) => setTimeout(resolve, 20));
      own.disconnect();
      await new Promise((resolve) => setTimeout(resolve, 2500));
    } finally {
      process.off('unhandledRejection', record);
      own.disconnect();
    }
    expect(unhandled.map(String)).toEqual([]);
  }, 15_000);

  it('takes this cluster\'s seeds in the configuration, and refuses malformed ones', () => {
    expect(loadConfig({ REDIS_CLUSTER_NODES: cluster.seeds }).redisClusterNodes).toHaveLength(cluster.nodes.length);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'localhost:99999,nohost' })).toThrow(/"localhost:99999" is not host:port[\s\S]*"nohost" is not host:port/);
  });
});

describe('a cart across slots (the coordinator on a real cluster)', () => {
  async function twoSlotSkus(onHandA: number, onHandB: number): Promise<{ scripts: ScriptRunner; a: string; b: string }> {
    const scripts = new ScriptRunner(client);
    const a = `SKU-${randomBytes(4).toString('hex')}`;
    const b = skuInAnotherSlot(a);
    await prepareStockChange(scripts, keys, { sku: a, ledgerSeq: 1, ledgerOnHand: onHandA, reclaimPerSkuMax: 10, holdsRebuildMax: 10 });
    await prepareStockChange(scripts, keys, { sku: b, ledgerSeq: 1, ledgerOnHand: onHandB, reclaimPerSkuMax: 10, holdsRebuildMax: 10 });
    return { scripts, a, b };
  }

  const cartCall = (lines: CartLine[], overrides: Partial<CartAcrossSlotsCall> = {}): CartAcrossSlotsCall => ({
    id: randomBytes(16).toString('base64url'),
    clientId: 'shop',
    idempotencyKey: `key-${randomBytes(6).toString('hex')}`,
    fingerprint: 'fp-1',
    customerId: 'customer-1',
    lines,
    holdTtlMs: 60_000,
    idempotencyTtlMs: 60_000,
    retentionMs: 60_000,
    reclaimPerSkuMax: 10,
    attemptLeaseMs: 30_000,
    ...overrides,
  });

  const reserved = async (scripts: ScriptRunner, sku: string) => {
    const state = await readSku(scripts, keys, sku, 10);
    return state.kind === 'found' ? state.reserved : -1;
  };

  it('holds every line, writes the pending record, replays the same cart, and refuses the key with another request', async () => {
    const { scripts, a, b } = await twoSlotSkus(5, 5);
    const call = cartCall([{ sku: a, quantity: 2 }, { sku: b, quantity: 3 }]);
    const created = await createCartAcrossSlots(scripts, keys, call);
    expect(created).toMatchObject({ kind: 'created', id: call.id });
    expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([2, 3]);
    expect(await readReservation(scripts, keys, call.id)).toMatchObject({ status: 'pending', clientId: 'shop', customerId: 'customer-1', lines: [{ sku: a, quantity: 2 }, { sku: b, quantity: 3 }] });
    const again = await createCartAcrossSlots(scripts, keys, { ...call, id: randomBytes(16).toString('base64url') });
    expect(again).toMatchObject({ kind: 'replayed', id: call.id });
    expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([2, 3]);
    expect(await createCartAcrossSlots(scripts, keys, { ...call, fingerprint: 'fp-other' })).toMatchObject({ kind: 'key-reused' });
  });

  it('a short slot gives back the slots held before it and forgets the attempt: a retry tries again', async () => {
    const { scripts, a, b } = await twoSlotSkus(5, 1);
    // Whichever slot comes first, the cart is short in one of them.
    const call = cartCall([{ sku: a, quantity: 2 }, { sku: b, quantity: 2 }]);
    expect(await createCartAcrossSlots(scripts, keys, call)).toMatchObject({ kind: 'insufficient', lines: [{ sku: b, requested: 2, available: 1 }] });
    expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([0, 0]);
    expect(await client.get(keys.idempotency('shop', call.idempotencyKey))).toBeNull();
    expect(await readReservation(scripts, keys, call.id)).toBeUndefined();
    await prepareStockChange(scripts, keys, { sku: b, ledgerSeq: 1, ledgerOnHand: 2, reclaimPerSkuMax: 10, holdsRebuildMax: 10 });
    expect(await createCartAcrossSlots(scripts, keys, call)).toMatchObject({ kind: 'created' });
  });

  it('a crash after the first slot: a retry within the attempt lease is told to wait; after it, it resumes the same cart, never a second', async () => {
    const { scripts, a, b } = await twoSlotSkus(5, 5);
    const call = cartCall([{ sku: a, quantity: 1 }, { sku: b, quantity: 1 }], { attemptLeaseMs: 300 });
    // The designed interleaving: the process dies between its first and second holdLines.
    let holds = 0;
    scripts.latch = async (name) => {
      if (name === 'holdLines' && (holds += 1) === 2) throw new Error('crashed between slots');
    };
    await expect(createCartAcrossSlots(scripts, keys, call)).rejects.toThrow('crashed between slots');
    scripts.latch = undefined;
    const [first] = slotGroups(keys, call.lines);
    expect(await reserved(scripts, first![0]!.sku)).toBe(1);
    expect(await readReservation(scripts, keys, call.id)).toBeUndefined();
    // The retry carries a fresh id, as a new request would. While the crashed attempt's lease
    // runs it might still be alive: one attempt at a time.
    const early = await createCartAcrossSlots(scripts, keys, { ...call, id: randomBytes(16).toString('base64url') });
    expect(early.kind).toBe('in-flight');
    await new Promise((resolve) => setTimeout(resolve, 350));
    // After the lease: the marker resumes the first cart.
    const retried = await createCartAcrossSlots(scripts, keys, { ...call, id: randomBytes(16).toString('base64url') });
    expect(retried).toMatchObject({ kind: 'created', id: call.id });
    expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([1, 1]);
    expect(await client.zcard(keys.skuHolds(a))).toBe(1);
    expect(await client.zcard(keys.skuHolds(b))).toBe(1);
  });

  it('an attempt that stalled past its lease while the key got another cart does not make a second reservation', async () => {
    const { scripts, a, b } = await twoSlotSkus(5, 5);
    const call = cartCall([{ sku: a, quantity: 1 }, { sku: b, quantity: 1 }], { attemptLeaseMs: 200 });
    const others = new ScriptRunner(client);
    let otherCart = '';
    // The designed interleaving (the reviewer's): attempt A holds every slot and stalls before its
    // last step; meanwhile a takeover was refused and forgot the key (abortCart), and a retry made
    // cart C under it. Then A goes on.
    scripts.latch = async (name) => {
      if (name !== 'finishCart') return;
      scripts.latch = undefined;
      expect(await abortCart(others, keys, { clientId: call.clientId, idempotencyKey: call.idempotencyKey, fingerprint: call.fingerprint, id: call.id })).toBe('done');
      const c = await createCartAcrossSlots(others, keys, { ...call, id: randomBytes(16).toString('base64url') });
      expect(c.kind).toBe('created');
      otherCart = c.kind === 'created' ? c.id : '';
    };
    const stale = await createCartAcrossSlots(scripts, keys, call);
    expect(stale.kind).toBe('in-flight');
    // One reservation for the key: A's record released, its holds given back; C's stand.
    expect(await readReservation(scripts, keys, call.id)).toMatchObject({ status: 'released' });
    expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([1, 1]);
    expect(await createCartAcrossSlots(scripts, keys, { ...call, id: randomBytes(16).toString('base64url') })).toMatchObject({ kind: 'replayed', id: otherCart });
  });

  it('never oversells under 300 racing carts for 30 and 50 units, and 20 racing duplicates of one request make one cart (the others told to retry)', async () => {
    const { scripts, a, b } = await twoSlotSkus(30, 50);
    const outcomes = await Promise.all(
      Array.from({ length: 300 }, (_, index) => createCartAcrossSlots(scripts, keys, cartCall(index % 2 === 0 ? [{ sku: a, quantity: 1 }, { sku: b, quantity: 1 }] : [{ sku: b, quantity: 1 }, { sku: a, quantity: 1 }]))),
    );
    expect(outcomes.filter((outcome) => outcome.kind === 'created')).toHaveLength(30);
    expect(outcomes.filter((outcome) => outcome.kind === 'insufficient')).toHaveLength(270);
    expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([30, 30]);
    expect([await client.zcard(keys.skuHolds(a)), await client.zcard(keys.skuHolds(b))]).toEqual([30, 30]);

    const { scripts: other, a: c, b: d } = await twoSlotSkus(10, 10);
    const duplicate = cartCall([{ sku: c, quantity: 1 }, { sku: d, quantity: 1 }]);
    const duplicates = await Promise.all(Array.from({ length: 20 }, () => createCartAcrossSlots(other, keys, { ...duplicate, id: randomBytes(16).toString('base64url') })));
    const made = duplicates.filter((outcome) => outcome.kind === 'created');
    expect(made).toHaveLength(1);
    expect(duplicates.filter((outcome) => outcome.kind === 'in-flight')).toHaveLength(19);
    expect([await reserved(other, c), await reserved(other, d)]).toEqual([1, 1]);
    // Once done, the duplicates replay that cart.
    expect(await createCartAcrossSlots(other, keys, { ...duplicate, id: randomBytes(16).toString('base64url') })).toMatchObject({ kind: 'replayed', id: (made[0] as { id: string }).id });
  });

  describe('confirming it', () => {
    async function createdCart(holdTtlMs = 60_000) {
      const { scripts, a, b } = await twoSlotSkus(5, 5);
      const call = cartCall([{ sku: a, quantity: 1 }, { sku: b, quantity: 2 }], { holdTtlMs });
      expect(await createCartAcrossSlots(scripts, keys, call)).toMatchObject({ kind: 'created' });
      return { scripts, a, b, id: call.id, lines: call.lines };
    }
    const score = (sku: string, member: string) => client.zscore(keys.skuHolds(sku), member);

    it('pins every slot, then confirms the record once; again it is already confirmed', async () => {
      const { scripts, a, b, id } = await createdCart();
      expect(await confirmCartAcrossSlots(scripts, keys, id, noCap)).toMatchObject({ kind: 'confirmed', fence: 2 });
      expect([await score(a, `${id}:1`), await score(b, `${id}:2`)]).toEqual(['inf', 'inf']);
      expect(await readReservation(scripts, keys, id)).toMatchObject({ status: 'confirmed', fence: 2 });
      expect(await confirmCartAcrossSlots(scripts, keys, id, noCap)).toEqual({ kind: 'already', status: 'confirmed', fence: 2 });
      expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([1, 2]);
    });

    it('a hold gone in one slot: the record expires first, then every slot gives its holds back', async () => {
      const { scripts, a, b, id, lines } = await createdCart();
      // As if one slot had reclaimed it: that slot's hold is gone.
      const [first] = slotGroups(keys, lines);
      await returnLines(scripts, keys, id, first!, 'all');
      expect(await confirmCartAcrossSlots(scripts, keys, id, noCap)).toEqual({ kind: 'expired' });
      expect(await readReservation(scripts, keys, id)).toMatchObject({ status: 'expired' });
      expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([0, 0]);
      expect([await client.zcard(keys.skuHolds(a)), await client.zcard(keys.skuHolds(b))]).toEqual([0, 0]);
    });

    it('pinned before its expiry, a cart is confirmed after it: its units were held throughout', async () => {
      const { scripts, a, b, id } = await createdCart(300);
      // The designed interleaving: the hold expires between the pins and the record's step, and
      // another request reads (and reclaims on) both SKUs meanwhile.
      scripts.latch = async (name) => {
        if (name !== 'settleRecord') return;
        scripts.latch = undefined;
        await new Promise((resolve) => setTimeout(resolve, 400));
        await readSku(scripts, keys, a, 10);
        await readSku(scripts, keys, b, 10);
      };
      expect(await confirmCartAcrossSlots(scripts, keys, id, noCap)).toMatchObject({ kind: 'confirmed' });
      expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([1, 2]);
    });

    it('a stale attempt whose pin finds a hold the commit already applied leaves the confirmed cart alone', async () => {
      const { scripts, id, lines } = await createdCart();
      const groups = slotGroups(keys, lines);
      // The designed interleaving: attempt B has read the record pending; before its first pin,
      // attempt A confirms, and the commit applies the first slot's allocation (its hold removed).
      scripts.latch = async (name) => {
        if (name !== 'pinLines') return;
        scripts.latch = undefined;
        expect(await confirmCartAcrossSlots(scripts, keys, id, noCap)).toMatchObject({ kind: 'confirmed' });
        const applied = groups[0]![0]!;
        await client.zrem(keys.skuHolds(applied.sku), `${id}:${applied.quantity}`);
      };
      expect(await confirmCartAcrossSlots(scripts, keys, id, noCap)).toEqual({ kind: 'already', status: 'confirmed', fence: 2 });
      // The other slot's hold is still pinned: B gave nothing back.
      const other = groups[1]![0]!;
      expect(await score(other.sku, `${id}:${other.quantity}`)).toBe('inf');
      expect(await readReservation(scripts, keys, id)).toMatchObject({ status: 'confirmed' });
    });

    it('released: the record first, then every slot; again it gives back nothing more; a confirmed cart is not releasable', async () => {
      const { scripts, a, b, id } = await createdCart();
      expect(await releaseCartAcrossSlots(scripts, keys, id)).toEqual({ kind: 'released', status: 'released' });
      expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([0, 0]);
      expect(await releaseCartAcrossSlots(scripts, keys, id)).toEqual({ kind: 'already', status: 'released' });
      expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([0, 0]);
      expect(await confirmCartAcrossSlots(scripts, keys, id, noCap)).toEqual({ kind: 'released' });
      const other = await createdCart();
      expect(await confirmCartAcrossSlots(other.scripts, keys, other.id, noCap)).toMatchObject({ kind: 'confirmed' });
      expect(await releaseCartAcrossSlots(other.scripts, keys, other.id)).toEqual({ kind: 'not-releasable', status: 'confirmed' });
      expect([await reserved(other.scripts, other.a), await reserved(other.scripts, other.b)]).toEqual([1, 2]);
    });

    it('rejected by the ledger: only at the job\'s fence; the pinned holds of every slot are given back', async () => {
      const { scripts, a, b, id, lines } = await createdCart();
      expect(await confirmCartAcrossSlots(scripts, keys, id, noCap)).toMatchObject({ kind: 'confirmed', fence: 2 });
      expect(await rejectCartAcrossSlots(scripts, keys, { reservationId: id, fence: 1, lines, retentionMs: 60_000 })).toEqual({ kind: 'unchanged', status: 'confirmed', unitsReturned: 0 });
      expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([1, 2]);
      expect(await rejectCartAcrossSlots(scripts, keys, { reservationId: id, fence: 2, lines, retentionMs: 60_000 })).toEqual({ kind: 'rejected', status: 'rejected', unitsReturned: 3 });
      expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([0, 0]);
      expect(await readReservation(scripts, keys, id)).toMatchObject({ status: 'rejected' });
    });

    it('a reject that died after the record\'s step: the job\'s re-run finds it rejected and gives the pinned holds back', async () => {
      const { scripts, a, b, id, lines } = await createdCart();
      expect(await confirmCartAcrossSlots(scripts, keys, id, noCap)).toMatchObject({ kind: 'confirmed', fence: 2 });
      // The designed interleaving: the first run moves the record and dies before any returnLines.
      scripts.latch = async (name) => {
        if (name === 'returnLines') throw new Error('died after the record\'s step');
      };
      await expect(rejectCartAcrossSlots(scripts, keys, { reservationId: id, fence: 2, lines, retentionMs: 60_000 })).rejects.toThrow('died after');
      scripts.latch = undefined;
      expect(await readReservation(scripts, keys, id)).toMatchObject({ status: 'rejected' });
      expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([1, 2]);
      expect(await rejectCartAcrossSlots(scripts, keys, { reservationId: id, fence: 2, lines, retentionMs: 60_000 })).toEqual({ kind: 'unchanged', status: 'rejected', unitsReturned: 3 });
      expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([0, 0]);
    });

    it('a create\'s compensation never gives back a pinned hold: that cart was confirmed by an attempt that took over', async () => {
      const { scripts, a, b, id, lines } = await createdCart();
      expect(await confirmCartAcrossSlots(scripts, keys, id, noCap)).toMatchObject({ kind: 'confirmed' });
      // A stale attempt of the same cart, refused in one slot, compensates the slots it held.
      for (const group of slotGroups(keys, lines)) expect(await returnLines(scripts, keys, id, group, 'keep-pinned')).toBe(0);
      expect([await reserved(scripts, a), await reserved(scripts, b)]).toEqual([1, 2]);
      expect(await client.zscore(keys.skuHolds(a), `${id}:1`)).toBe('inf');
    });

    it('20 confirms racing: one confirms the record, the others find it confirmed; fence 2', async () => {
      const { scripts, id } = await createdCart();
      const outcomes = await Promise.all(Array.from({ length: 20 }, () => confirmCartAcrossSlots(scripts, keys, id, noCap)));
      expect(outcomes.filter((outcome) => outcome.kind === 'confirmed')).toHaveLength(1);
      expect(outcomes.filter((outcome) => outcome.kind === 'already')).toHaveLength(19);
      expect(await readReservation(scripts, keys, id)).toMatchObject({ status: 'confirmed', fence: 2 });
    });
  });
});
