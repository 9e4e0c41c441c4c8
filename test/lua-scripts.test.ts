// Proves each Lua script's contract directly against the real Redis: every return code, and the
// state of the keys afterwards (not only the replies). Runs in its own key prefix in the test db;
// every test uses SKUs and reservation ids of its own, and afterAll deletes the prefix.
//
// The SKU state is an ordered projection of the Postgres ledger (lua/includes/projection.lua):
// onHand and pos move only through applyEntries; a decrease is staged as a pending debit by
// prepareStockChange, absorbed when its entry is applied, released by its id.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { deleteKeysWithPrefix } from '../lib/redis/delete-keys';
import { reservationIdAt } from '../lib/random-ids';
import { recordBucketsPerWindow, recordSubBuckets, recordWindowChars, redisKeys } from '../lib/redis/keys';
import { slotOf } from '../lib/redis/slots';
import { buildLibrary, loadScripts, scriptNames, ScriptRunner, type ScriptReply } from '../lib/redis/scripts';
import { holdLines, type HoldGuard } from '../lib/scripts/cart-lines';
import { admitCustomer, ensureCustomer, forgetCustomer, pinCustomer, readmitCustomer } from '../lib/scripts/customer-admission';
import { readReservation } from '../lib/scripts/reservation-record';
import { testRedisUrl, uniqueName } from './support/harness';
import { dropRecord, patchRecord, readRecord } from './support/records';
import { createOne } from './support/create-call';

const prefix = `t:lua:${randomBytes(4).toString('hex')}:`;
const keys = redisKeys(prefix);
const redis = new Redis(testRedisUrl);
const scripts = new ScriptRunner(redis);
const hourMs = 3_600_000;

afterAll(async () => {
  await deleteKeysWithPrefix(redis, prefix);
  redis.disconnect();
});

interface SeedOptions {
  reserved?: number;
  pos?: number;
  debit?: number;
  did?: string;
}

/** A SKU state as the projection writes it (onHand, pos, reserved, debit; did when a debit is pending). */
async function seedSku(onHand: number, options: SeedOptions = {}): Promise<string> {
  const sku = uniqueName('L');
  await redis.hset(keys.skuState(sku), 'onHand', onHand, 'pos', options.pos ?? 1, 'reserved', options.reserved ?? 0, 'debit', options.debit ?? 0);
  if (options.did !== undefined) await redis.hset(keys.skuState(sku), 'did', options.did);
  return sku;
}

const stateKeys = (sku: string) => [keys.skuState(sku), keys.skuHolds(sku)];
const newId = () => randomBytes(16).toString('base64url');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface ReserveCall {
  lines: Array<[string, number]>;
  key?: string;
  fingerprint?: string;
  id?: string;
  ttlMs?: number;
  customer?: string;
}

function reserve(call: ReserveCall) {
  const id = call.id ?? newId();
  const idemKey = keys.idempotency('client-1', call.key ?? randomBytes(6).toString('hex'));
  const keyList = [idemKey, keys.reservation(id)];
  const args: Array<string | number> = [call.fingerprint ?? 'fp-1', id, 'client-1', call.customer ?? '', call.ttlMs ?? hourMs, hourMs, hourMs, 100];
  for (const [sku, quantity] of call.lines) {
    keyList.push(keys.skuState(sku), keys.skuHolds(sku));
    args.push(sku, quantity);
  }
  return { id, idemKey, reply: createOne(scripts, keyList, args) };
}

/** Fields of a reservation's record, null where absent (the record is one encoded field of a bucket). */
async function recordFields(id: string, ...fields: string[]): Promise<Array<string | null>> {
  const record = await readRecord(redis, keys, id);
  return fields.map((field) => record?.[field] ?? null);
}

const numberOrNull = (value: string | null | undefined) => (value === null || value === undefined ? null : Number(value));

/** The projection fields of a SKU state (null where a field is absent). */
async function skuState(sku: string) {
  const [onHand, pos, reserved, debit, did] = await redis.hmget(keys.skuState(sku), 'onHand', 'pos', 'reserved', 'debit', 'did');
  return { onHand: numberOrNull(onHand), pos: numberOrNull(pos), reserved: numberOrNull(reserved), debit: numberOrNull(debit), did: did ?? null };
}

/** Every field of a SKU state, as stored. */
const rawState = (sku: string) => redis.hgetall(keys.skuState(sku));
const holds = (sku: string) => redis.zrange(keys.skuHolds(sku), 0, -1);

const lineKeys = (id: string, lines: Array<[string, number]>) => [keys.reservation(id), ...lines.flatMap(([sku]) => stateKeys(sku))];
const confirm = (id: string, lines: Array<[string, number]>) => scripts.run('confirmReservation', lineKeys(id, lines), [id]);
const release = (id: string, lines: Array<[string, number]>) => scripts.run('releaseReservation', lineKeys(id, lines), [id]);

/** A confirmed reservation (holds at +inf, fence 2). */
async function confirmed(lines: Array<[string, number]>): Promise<string> {
  const call = reserve({ lines });
  expect((await call.reply)[0]).toBe(1);
  expect((await confirm(call.id, lines))[0]).toBe(1);
  return call.id;
}

interface Entry {
  seq: number;
  delta: number;
  after: number;
  kind?: 'adjustment' | 'allocation' | 'deallocation';
  res?: string;
  debit?: string;
}

const entryArgs = (entries: Entry[]) => entries.flatMap((entry) => [entry.seq, entry.delta, entry.after, entry.kind ?? 'adjustment', entry.res ?? '', entry.debit ?? '']);
const applyEntries = (sku: string, ...entries: Entry[]) => scripts.run('applyEntries', stateKeys(sku), entryArgs(entries));

const prepare = (sku: string, ledgerPos: number, ledgerOnHand: number, debit?: [string, number], holdsMax = 100) =>
  scripts.run('prepareStockChange', [keys.skuState(sku), keys.skuHolds(sku), keys.skuUnknown(sku)], [ledgerPos, ledgerOnHand, debit?.[0] ?? '', debit?.[1] ?? 0, 100, holdsMax]);
const releaseDebit = (sku: string, id: string) => scripts.run('releaseDebit', [keys.skuState(sku)], [id]);
const initSku = (sku: string, onHand: number, pos: number, holdsMax = 100) => scripts.run('initSku', stateKeys(sku), [onHand, pos, holdsMax]);
const readSku = (sku: string) => scripts.run('readSku', stateKeys(sku), [100]);
const correctOnHand = (sku: string, pos: number, onHand: number, dryRun = false) => scripts.run('correctOnHand', [keys.skuState(sku)], [pos, onHand, dryRun ? '1' : '0']);
const finish = (script: 'finishCommit' | 'finishCancel', id: string, fence: number) => scripts.run(script, [keys.reservation(id)], [id, fence, hourMs]);

describe('loader', () => {
  it('resolves includes once and names every script with its key count', () => {
    const loaded = loadScripts();
    const create = loaded.get('createReservation');
    expect(create?.numberOfKeys).toBeUndefined();
    expect(loaded.get('readSku')?.numberOfKeys).toBe(2);
    expect(loaded.get('applyEntries')?.numberOfKeys).toBe(2);
    expect(loaded.get('prepareStockChange')?.numberOfKeys).toBe(3);
    expect(loaded.get('releaseDebit')?.numberOfKeys).toBe(1);
    expect(loaded.get('rejectReservation')?.numberOfKeys).toBeUndefined();
    expect(create?.body).toContain('local function reclaimExpiredHolds');
    expect(create?.body.match(/local function fail/g)).toHaveLength(1);
    expect(create?.body).not.toContain('@include');
    const apply = loaded.get('applyEntries');
    expect(apply?.body).toContain('local function rebuildState');
    expect(apply?.body.match(/local function holdQuantity/g)).toHaveLength(1);
  });

  it('loads the library again when Redis has lost it ("Function not found"), once for many callers at once', async () => {
    // A library of its own (one script's code differs by a comment), so that no other test
    // process sharing this Redis loads or deletes it meanwhile.
    const unique = new Map([...loadScripts()].map(([name, script]) => [name, name === 'readSku' ? { ...script, own: `${script.own}\n-- ${randomBytes(6).toString('hex')}` } : script]));
    const runner = new ScriptRunner(redis, unique);
    const listed = async () => ((await redis.call('FUNCTION', 'LIST', 'LIBRARYNAME', runner.libraryName)) as unknown[]).length;
    const sku = await seedSku(3);
    const read = () => runner.run('readSku', stateKeys(sku), [10]);
    try {
      expect(await listed()).toBe(0);
      expect(await Promise.all(Array.from({ length: 5 }, read))).toEqual(Array.from({ length: 5 }, () => [1, 3, 0, 1]));
      expect(runner.libraryLoads).toBe(1);
      expect(await listed()).toBe(1);
      await redis.call('FUNCTION', 'DELETE', runner.libraryName);
      expect(await Promise.all(Array.from({ length: 5 }, read))).toEqual(Array.from({ length: 5 }, () => [1, 3, 0, 1]));
      expect(runner.libraryLoads).toBe(2);
    } finally {
      await redis.call('FUNCTION', 'DELETE', runner.libraryName).catch(() => undefined);
    }
  });

  it('builds one library: every include once, each script a function named by the version, per-call state reset', () => {
    const library = buildLibrary(loadScripts());
    expect(library.name).toMatch(/^stockhold_[0-9a-f]{12}$/);
    expect(library.functionName('createReservation')).toBe(`sh_${library.name.slice('stockhold_'.length)}_createReservation`);
    expect(library.code.match(/^local function reclaimExpiredHolds/gm)).toHaveLength(1);
    expect(library.code.match(/redis\.register_function/g)).toHaveLength(scriptNames.length);
    const create = library.code.slice(library.code.indexOf(`'${library.functionName('createReservation')}'`));
    expect(create.split('\n').slice(1, 3)).toEqual(['KEYS, ARGV = keys, args', 'holdsCallStart()']);
  });
});

describe('createReservation', () => {
  it('holds every line, writes the record and the idempotency record', async () => {
    const a = await seedSku(10);
    const b = await seedSku(5);
    const call = reserve({ lines: [[a, 3], [b, 5]], customer: 'cust-9' });
    const reply = await call.reply;
    expect(reply[0]).toBe(1);
    const [, createdAt, expiresAt] = reply as number[];
    expect(expiresAt! - createdAt!).toBe(hourMs);
    expect(await skuState(a)).toEqual({ onHand: 10, pos: 1, reserved: 3, debit: 0, did: null });
    expect(await skuState(b)).toEqual({ onHand: 5, pos: 1, reserved: 5, debit: 0, did: null });
    expect(await redis.zscore(keys.skuHolds(a), `${call.id}:3`)).toBe(String(expiresAt));
    expect(await readRecord(redis, keys, call.id)).toEqual({
      s: 'pending', c: 'client-1', u: 'cust-9', ca: String(createdAt), ex: String(expiresAt), l: `${a}:3,${b}:5`, v: '1',
    });
    expect(await redis.get(call.idemKey)).toBe(`d|fp-1|${call.id}|${createdAt}|${expiresAt}`);
    expect(await redis.pttl(call.idemKey)).toBeGreaterThan(hourMs - 5000);
    expect(await redis.pttl(keys.reservation(call.id))).toBeGreaterThan(2 * hourMs - 5000);
  });

  it('replays the first creation for the same key and fingerprint, holding nothing more', async () => {
    const sku = await seedSku(10);
    const first = reserve({ lines: [[sku, 2]], key: 'same' });
    const [, createdAt, expiresAt] = (await first.reply) as number[];
    const second = reserve({ lines: [[sku, 2]], key: 'same' });
    expect(await second.reply).toEqual([2, first.id, createdAt, expiresAt]);
    expect(await readRecord(redis, keys, second.id).then((record) => (record === undefined ? 0 : 1))).toBe(0);
    expect(await skuState(sku)).toMatchObject({ reserved: 2 });
  });

  it('refuses the same key with another fingerprint (-2)', async () => {
    const sku = await seedSku(10);
    await reserve({ lines: [[sku, 1]], key: 'k2' }).reply;
    expect(await reserve({ lines: [[sku, 1]], key: 'k2', fingerprint: 'other' }).reply).toEqual([-2]);
    expect(await skuState(sku)).toMatchObject({ reserved: 1 });
  });

  it('reports a key held by a running operation (-4)', async () => {
    const sku = await seedSku(10);
    const idemKey = keys.idempotency('client-1', 'running');
    await redis.set(idemKey, 'r|fp-1|', 'PX', 30_000);
    const reply = await reserve({ lines: [[sku, 1]], key: 'running' }).reply;
    expect(reply[0]).toBe(-4);
    expect(Number(reply[1])).toBeGreaterThan(20_000);
    expect(await skuState(sku)).toMatchObject({ reserved: 0 });
  });

  it('holds nothing when any line is short (-1), naming each short line', async () => {
    const plenty = await seedSku(10);
    const short = await seedSku(2);
    const call = reserve({ lines: [[plenty, 1], [short, 3]] });
    expect(await call.reply).toEqual([-1, short, 3, 2, -1]);
    expect(await skuState(plenty)).toMatchObject({ reserved: 0 });
    expect(await redis.exists(keys.reservation(call.id), call.idemKey, keys.skuHolds(plenty))).toBe(0);
  });

  it('gives the time until the earliest pending hold expires when holds could free units', async () => {
    const sku = await seedSku(3);
    await reserve({ lines: [[sku, 2]], ttlMs: 60_000 }).reply;
    await reserve({ lines: [[sku, 1]], ttlMs: 30_000 }).reply;
    const reply = await reserve({ lines: [[sku, 2]] }).reply;
    expect(reply.slice(0, 4)).toEqual([-1, sku, 2, 0]);
    expect(Number(reply[4])).toBeGreaterThan(29_000);
    expect(Number(reply[4])).toBeLessThanOrEqual(30_000);
    // More than on-hand can never be satisfied: no retry hint.
    expect(await reserve({ lines: [[sku, 4]] }).reply).toEqual([-1, sku, 4, 0, -1]);
  });

  it('refuses units a pending debit has taken (a decrease in effect), and holds the rest', async () => {
    const sku = await seedSku(10, { debit: 4, did: 'debit-1' });
    const refused = reserve({ lines: [[sku, 7]] });
    expect(await refused.reply).toEqual([-1, sku, 7, 6, -1]);
    expect(await redis.exists(keys.reservation(refused.id), refused.idemKey, keys.skuHolds(sku))).toBe(0);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 1, reserved: 0, debit: 4, did: 'debit-1' });
    const held = reserve({ lines: [[sku, 6]] });
    expect((await held.reply)[0]).toBe(1);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 1, reserved: 6, debit: 4, did: 'debit-1' });
    expect(await holds(sku)).toEqual([`${held.id}:6`]);
  });

  it('counts the debit out of on-hand for the retry hint too', async () => {
    const sku = await seedSku(10, { debit: 4, did: 'debit-1' });
    await reserve({ lines: [[sku, 3]], ttlMs: 30_000 }).reply;
    // 6 on offer, 3 held: 4 could be had once the hold expires.
    const wait = await reserve({ lines: [[sku, 4]] }).reply;
    expect(wait.slice(0, 4)).toEqual([-1, sku, 4, 3]);
    expect(Number(wait[4])).toBeGreaterThan(29_000);
    // 7 is within the 10 on hand but not within the 6 the debit leaves: no hold can free it.
    expect(await reserve({ lines: [[sku, 7]] }).reply).toEqual([-1, sku, 7, 3, -1]);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 1, reserved: 3, debit: 4, did: 'debit-1' });
  });

  it('reports SKUs missing from Redis (-3) and holds nothing', async () => {
    const known = await seedSku(5);
    const missingA = uniqueName('NOPE');
    const missingB = uniqueName('NOPE');
    const call = reserve({ lines: [[known, 1], [missingA, 1], [missingB, 1]] });
    expect(await call.reply).toEqual([-3, missingA, missingB]);
    expect(await skuState(known)).toMatchObject({ reserved: 0 });
    expect(await redis.exists(keys.skuState(missingA), keys.skuHolds(missingA), keys.reservation(call.id))).toBe(0);
  });

  it('reclaims expired holds on the SKUs it touches before checking', async () => {
    const sku = await seedSku(2);
    const old = reserve({ lines: [[sku, 2]], ttlMs: 1 });
    await old.reply;
    await sleep(5);
    const fresh = reserve({ lines: [[sku, 2]] });
    expect((await fresh.reply)[0]).toBe(1);
    expect(await skuState(sku)).toMatchObject({ onHand: 2, reserved: 2 });
    expect(await holds(sku)).toEqual([`${fresh.id}:2`]);
  });

  it('crashes on a duplicate SKU line, a programmer error', async () => {
    const sku = await seedSku(5);
    await expect(reserve({ lines: [[sku, 1], [sku, 1]] }).reply).rejects.toThrow(/ASSERT duplicate line/);
    expect(await skuState(sku)).toMatchObject({ reserved: 0 });
  });
});

// A call carries a batch of reservations (lib/scripts/create-reservation.ts sends those of one
// event-loop turn together). Each must be answered exactly as if it had been called alone, in order,
// though the call reads each SKU's state, the clock and each bucket's expiry once.
describe('createReservation, several reservations in one call', () => {
  interface Packed { id: string; idemKey: string; keys: string[]; args: Array<string | number> }
  function pack(call: ReserveCall & { reclaimMax?: number; clientId?: string }): Packed {
    const id = call.id ?? newId();
    const clientId = call.clientId ?? 'client-1';
    const idemKey = keys.idempotency(clientId, call.key ?? randomBytes(6).toString('hex'));
    const keyList = [idemKey, keys.reservation(id)];
    const args: Array<string | number> = [call.fingerprint ?? 'fp-1', id, clientId, call.customer ?? '', call.ttlMs ?? hourMs, hourMs, hourMs, call.reclaimMax ?? 100];
    for (const [sku, quantity] of call.lines) {
      keyList.push(keys.skuState(sku), keys.skuHolds(sku));
      args.push(sku, quantity);
    }
    return { id, idemKey, keys: keyList, args };
  }
  function batch(items: readonly Packed[]): Promise<ScriptReply[]> {
    return scripts
      .run('createReservation', items.flatMap((item) => item.keys), [items.length, ...items.map((item) => item.keys.length), ...items.flatMap((item) => item.args)])
      .then((reply) => reply as unknown as ScriptReply[]);
  }

  it('answers each in order as if alone: the last units go to the first, the rest are refused, and what is held is what was granted', async () => {
    const sku = await seedSku(3);
    const items = Array.from({ length: 5 }, () => pack({ lines: [[sku, 1]] }));
    const replies = await batch(items);
    expect(replies.map((reply) => reply[0])).toEqual([1, 1, 1, -1, -1]);
    expect(replies[3]).toEqual([-1, sku, 1, 0, expect.any(Number)]);
    // One clock for the call: every hold of the batch expires at the same time.
    const expiresAt = (replies[0] as number[])[2]!;
    expect(replies.slice(0, 3).map((reply) => reply[2])).toEqual([expiresAt, expiresAt, expiresAt]);
    expect(await skuState(sku)).toMatchObject({ onHand: 3, reserved: 3 });
    expect((await holds(sku)).sort()).toEqual(items.slice(0, 3).map((item) => `${item.id}:1`).sort());
    // A time passed to Redis as a number arrives as a plain integer.
    expect(await redis.zscore(keys.skuHolds(sku), `${items[0]!.id}:1`)).toBe(String(expiresAt));
    expect(await redis.exists(keys.reservation(items[3]!.id), items[3]!.idemKey, items[4]!.idemKey)).toBe(0);
    expect(await readReservation(scripts, keys, items[3]!.id)).toBeUndefined();
  });

  it('mixes every outcome: a replay, a key reused with another request, a missing SKU, carts over two SKUs that share one, each answered as alone', async () => {
    const a = await seedSku(4);
    const b = await seedSku(1);
    const first = pack({ lines: [[a, 1]], key: 'replayed' });
    await createOne(scripts, first.keys, first.args);
    const replay = pack({ lines: [[a, 1]], key: 'replayed' });
    const reused = pack({ lines: [[a, 1]], key: 'replayed', fingerprint: 'another' });
    const missingSku = uniqueName('NOPE');
    const missing = pack({ lines: [[missingSku, 1]] });
    const both = pack({ lines: [[a, 2], [b, 1]] });
    const bShort = pack({ lines: [[a, 1], [b, 1]] });
    const aLast = pack({ lines: [[a, 1]] });
    const aNone = pack({ lines: [[a, 1]] });
    const replies = await batch([replay, reused, missing, both, bShort, aLast, aNone]);
    expect(replies[0]!.slice(0, 2)).toEqual([2, first.id]);
    expect(replies[1]).toEqual([-2]);
    expect(replies[2]).toEqual([-3, missingSku]);
    expect(replies[3]![0]).toBe(1);
    expect(replies[4]).toEqual([-1, b, 1, 0, expect.any(Number)]);
    expect(replies[5]![0]).toBe(1);
    expect(replies[6]).toEqual([-1, a, 1, 0, expect.any(Number)]);
    expect(await skuState(a)).toMatchObject({ reserved: 4 });
    expect(await skuState(b)).toMatchObject({ reserved: 1 });
    expect((await holds(a)).sort()).toEqual([`${first.id}:1`, `${both.id}:2`, `${aLast.id}:1`].sort());
    expect(await holds(b)).toEqual([`${both.id}:1`]);
  });

  it('a reservation that raises fails alone (-100) and writes nothing; the others go on from what Redis holds', async () => {
    const sku = await seedSku(2);
    const before = pack({ lines: [[sku, 1]] });
    const broken = pack({ lines: [[sku, 1]], clientId: 'client|1' });
    const duplicate = pack({ lines: [[sku, 1], [sku, 1]] });
    const after = pack({ lines: [[sku, 1]] });
    const tooMany = pack({ lines: [[sku, 1]] });
    const replies = await batch([before, broken, duplicate, after, tooMany]);
    expect(replies[0]![0]).toBe(1);
    expect(replies[1]).toEqual([-100, expect.stringMatching(/^ASSERT a client id with "\|"/)]);
    expect(replies[2]).toEqual([-100, expect.stringMatching(/^ASSERT duplicate line/)]);
    expect(replies[3]![0]).toBe(1);
    expect(replies[4]).toEqual([-1, sku, 1, 0, expect.any(Number)]);
    expect(await skuState(sku)).toMatchObject({ reserved: 2 });
    expect((await holds(sku)).sort()).toEqual([`${before.id}:1`, `${after.id}:1`].sort());
    expect(await redis.exists(broken.idemKey, duplicate.idemKey)).toBe(0);
  });

  it('a malformed cart changes nothing, not even a reclaim; a broken invariant found after a reclaim reports what was reclaimed, and the next reservation reads Redis afresh', async () => {
    const a = await seedSku(3);
    expect((await batch([pack({ lines: [[a, 2]], ttlMs: 1 })]))[0]![0]).toBe(1);
    await sleep(5);
    // A duplicate line (checked before any line's reclaim): a's expired hold stays.
    const duplicate = await batch([pack({ lines: [[a, 1], [a, 1]] })]);
    expect(duplicate[0]).toEqual([-100, expect.stringMatching(/^ASSERT duplicate line/)]);
    expect(await skuState(a)).toMatchObject({ reserved: 2 });
    expect(await holds(a)).toHaveLength(1);
    // b's state says fewer units reserved than its expired holds: a broken invariant, found only
    // when b's line is reclaimed, after a's line gave back its expired hold.
    const b = await seedSku(5, { reserved: 0 });
    await redis.zadd(keys.skuHolds(b), 1000, 'ghost:2');
    const broken = pack({ lines: [[a, 1], [b, 1]] });
    const next = pack({ lines: [[a, 3]] });
    const replies = await batch([broken, next]);
    expect(replies[0]!.slice(0, 2)).toEqual([-100, expect.stringMatching(/^ASSERT reserved 0 below expired holds 2/)]);
    const report = replies[0]![2] as unknown as string[];
    expect(report.slice(1)).toEqual([expect.stringMatching(/:2$/), expect.any(String)]);
    // The next one sees a's units given back (3 on hand, none reserved), not what the cache knew.
    expect(replies[1]![0]).toBe(1);
    expect(await skuState(a)).toMatchObject({ onHand: 3, reserved: 3 });
    expect(await holds(a)).toEqual([`${next.id}:3`]);
  });

  it('a reservation that raises between a write and the cache\'s update leaves the next one to read Redis, not the cache', async () => {
    // An audit in progress up to score 5,000 whose partial sum is not a number: the reclaim of the
    // expired hold (score 1,000) gives its units back, then fails adjusting the audit's sum.
    const sku = await seedSku(2, { reserved: 2 });
    await redis.zadd(keys.skuHolds(sku), 1000, 'old:2');
    await redis.hset(keys.skuState(sku), 'as', 5000, 'ap', 'not-a-number');
    const replies = await batch([pack({ lines: [[sku, 1]] }), pack({ lines: [[sku, 2]] })]);
    expect(replies[0]!.slice(0, 2)).toEqual([-100, expect.stringMatching(/not an integer/)]);
    // Redis gave the 2 units back before the error; the cache had not heard of it.
    expect(replies[1]![0]).toBe(1);
    expect(await skuState(sku)).toMatchObject({ onHand: 2, reserved: 2 });
  });

  it('refuses a hold that would expire at the call\'s own time: a TTL below 1 ms raises', async () => {
    const sku = await seedSku(2);
    const replies = await batch([pack({ lines: [[sku, 1]], ttlMs: 0 }), pack({ lines: [[sku, 1]] })]);
    expect(replies[0]).toEqual([-100, expect.stringMatching(/^ASSERT hold ttl >= 1/)]);
    expect(replies[1]![0]).toBe(1);
    expect(await skuState(sku)).toMatchObject({ reserved: 1 });
  });

  it('reclaims expired holds chunk by chunk across the batch, each chunk reported by the reservation that took it', async () => {
    const sku = await seedSku(5);
    // Five holds that expire at once (one call: one clock, nothing expired yet within it).
    expect((await batch(Array.from({ length: 5 }, () => pack({ lines: [[sku, 1]], ttlMs: 1 })))).map((reply) => reply[0])).toEqual([1, 1, 1, 1, 1]);
    await sleep(5);
    // Reclaim at most 2 a call: the first reservation frees 2, the next 2 more, the third the last.
    const items = Array.from({ length: 4 }, () => pack({ lines: [[sku, 1]], reclaimMax: 2 }));
    const replies = await batch(items);
    const reclaimedBy = replies.map((reply) => {
      const report = reply[reply.length - 1];
      return Array.isArray(report) ? (report.length - 1) / 2 : 0;
    });
    expect(replies.map((reply) => reply[0])).toEqual([1, 1, 1, 1]);
    expect(reclaimedBy).toEqual([2, 2, 1, 0]);
    expect(await skuState(sku)).toMatchObject({ onHand: 5, reserved: 4 });
    expect((await holds(sku)).sort()).toEqual(items.map((item) => `${item.id}:1`).sort());
  });

  it('keeps every record of a bucket until its latest drop time, the bucket\'s expiry read once', async () => {
    const sku = await seedSku(10);
    const id = newId();
    const mate = id.slice(0, recordWindowChars + 3) + newId().slice(recordWindowChars + 3);
    expect(keys.reservation(mate)).toBe(keys.reservation(id));
    const replies = await batch([pack({ lines: [[sku, 1]], id, ttlMs: 60_000 }), pack({ lines: [[sku, 1]], id: mate, ttlMs: 2 * hourMs })]);
    const expiresAt = (replies[1] as number[])[2]!;
    // The second record's drop time (its expiry + retention) is later: the bucket lasts past it.
    expect(await redis.pexpiretime(keys.reservation(id))).toBeGreaterThanOrEqual(expiresAt + hourMs);
    expect(await readReservation(scripts, keys, mate)).toMatchObject({ status: 'pending', expiresAtMs: expiresAt });
  });

  it('refuses a call whose header does not describe its keys and arguments, before any write', async () => {
    const sku = await seedSku(5);
    const item = pack({ lines: [[sku, 1]] });
    await expect(scripts.run('createReservation', item.keys, [0, ...item.args])).rejects.toThrow(/ASSERT ARGV\[1\] must be 1-64/);
    await expect(scripts.run('createReservation', item.keys, [65, ...item.args])).rejects.toThrow(/ASSERT ARGV\[1\] must be 1-64/);
    await expect(scripts.run('createReservation', item.keys, [1, item.keys.length + 1, ...item.args])).rejects.toThrow(/ASSERT KEYS must be/);
    await expect(scripts.run('createReservation', item.keys, [1, 3, ...item.args])).rejects.toThrow(/ASSERT reservation 1 has too few keys/);
    expect(await skuState(sku)).toMatchObject({ reserved: 0 });
  });
});

describe('record buckets (lua/includes/record.lua)', () => {
  /** An id whose record shares `id`'s bucket: same window characters, spread character and sub-key character. */
  const bucketMate = (id: string) => id.slice(0, recordWindowChars + 3) + newId().slice(recordWindowChars + 3);
  // Each test's records in a 64 ms window of its own: a record of another test in the same bucket
  // (a long customer id, say) would change what the bucket is made of.
  let windows = 0;
  const idInOwnWindow = () => reservationIdAt(Date.UTC(2026, 0, 1) + 64 * (windows += 1));
  const open = (id: string, fields: { customer?: string; createdAt: number; expiresAt: number; lines: string; retentionMs?: number }) =>
    scripts.run('openRecord', [keys.reservation(id)], [id, 'client-1', fields.customer ?? '', fields.createdAt, fields.expiresAt, fields.lines, fields.retentionMs ?? hourMs]);

  it('names a bucket from the id: the records made in one 64 ms window share 16 keys in 4 slots, each record the id less its window characters', async () => {
    const at = Date.UTC(2026, 10, 26, 9, 0, 0, 0);
    const sameWindow = Array.from({ length: 400 }, (_, index) => reservationIdAt(at + (index % 64)));
    expect(new Set(sameWindow.map((id) => keys.reservation(id))).size).toBe(recordBucketsPerWindow * recordSubBuckets);
    expect(new Set(sameWindow.map((id) => slotOf(keys.reservation(id)))).size).toBe(recordBucketsPerWindow);
    // The previous layout's bucket of an id is in the same slot (scripts find its records there).
    for (const id of sameWindow) expect(slotOf(keys.reservationPrevious(id))).toBe(slotOf(keys.reservation(id)));
    const sku = await seedSku(1);
    const id = idInOwnWindow();
    expect((await reserve({ lines: [[sku, 1]], id }).reply)[0]).toBe(1);
    expect(await redis.hkeys(keys.reservation(id))).toEqual([id.slice(recordWindowChars)]);
    expect(keys.reservation(id)).toBe(`${keys.reservationPrevious(id)}:${id.charCodeAt(recordWindowChars + 2) % recordSubBuckets}`);
    expect(keys.reservation(reservationIdAt(at + 64))).not.toBe(keys.reservation(reservationIdAt(at)));
    expect(keys.reservation(bucketMate(sameWindow[0]!))).toBe(keys.reservation(sameWindow[0]!));
    // Any id names a bucket, one that is a single cluster slot.
    expect(keys.reservation('abc')).toBe(`${prefix}res:{abc.0}`);
  });

  it('keeps every field through its encoding: a customer id with "|" and unicode, an id without a time, a creation before the id', async () => {
    const sku = await seedSku(5);
    const id = idInOwnWindow();
    const createdAt = Date.now() - 1234;
    expect(await open(id, { customer: 'a|b:c,d|€ "x"', createdAt, expiresAt: createdAt + 900_000, lines: `${sku}:2,${sku}-2:1` })).toEqual([1]);
    expect(await readReservation(scripts, keys, id)).toMatchObject({
      status: 'pending', clientId: 'client-1', customerId: 'a|b:c,d|€ "x"', createdAtMs: createdAt, expiresAtMs: createdAt + 900_000,
      lines: [{ sku, quantity: 2 }, { sku: `${sku}-2`, quantity: 1 }], fence: 1, confirmedAtMs: null, settledAtMs: null, cancelRequested: false,
    });
    const timeless = 'short';
    expect(await open(timeless, { createdAt, expiresAt: createdAt + 5, lines: `${sku}:1` })).toEqual([1]);
    expect(await readReservation(scripts, keys, timeless)).toMatchObject({ customerId: null, createdAtMs: createdAt, expiresAtMs: createdAt + 5 });
    // Written again: an existing record is left as it is.
    expect(await open(id, { createdAt: 1, expiresAt: 2, lines: 'X:1' })).toEqual([2]);
    expect(await readReservation(scripts, keys, id)).toMatchObject({ createdAtMs: createdAt });
  });

  it('a bucket never expires while one of its records is confirmed, then expires with the latest record it keeps', async () => {
    const sku = await seedSku(10);
    const first = reserve({ lines: [[sku, 1]], id: idInOwnWindow(), ttlMs: 60_000 });
    expect((await first.reply)[0]).toBe(1);
    const second = reserve({ lines: [[sku, 1]], id: bucketMate(first.id), ttlMs: 60_000 });
    expect((await second.reply)[0]).toBe(1);
    const third = reserve({ lines: [[sku, 1]], id: bucketMate(first.id), ttlMs: 60_000 });
    expect((await third.reply)[0]).toBe(1);
    const bucket = keys.reservation(first.id);
    expect(keys.reservation(third.id)).toBe(bucket);
    // Created: kept for the hold (60 s) and the retention (1 h).
    expect(await redis.pttl(bucket)).toBeGreaterThan(hourMs + 55_000);
    expect(await redis.call('OBJECT', 'ENCODING', bucket)).toBe('listpack');
    expect((await confirm(first.id, [[sku, 1]]))[0]).toBe(1);
    expect((await confirm(second.id, [[sku, 1]]))[0]).toBe(1);
    expect(await redis.pttl(bucket)).toBe(-1);
    // One of the two confirmed records commits: the other still holds the bucket.
    await applyEntries(sku, { seq: 2, delta: -1, after: 9, kind: 'allocation', res: first.id });
    expect(await finish('finishCommit', first.id, 2)).toEqual([1]);
    expect(await redis.pttl(bucket)).toBe(-1);
    // A release leaves the bucket as it is (its record was kept for its retention already).
    expect(await release(third.id, [[sku, 1]])).toEqual([1, 'released']);
    expect(await redis.pttl(bucket)).toBe(-1);
    // The last confirmed one leaves: the bucket expires at the latest drop time any record asked for.
    await applyEntries(sku, { seq: 3, delta: -1, after: 8, kind: 'allocation', res: second.id });
    expect(await finish('finishCommit', second.id, 2)).toEqual([1]);
    expect(await redis.pttl(bucket)).toBeGreaterThan(hourMs + 55_000);
    expect(await redis.hexists(bucket, '~')).toBe(0);
    expect((await readReservation(scripts, keys, first.id))?.status).toBe('committed');
    expect((await readReservation(scripts, keys, third.id))?.status).toBe('released');
  });

  it('a record of the previous layout (RECORD_LAYOUT=previous, or a version before) is read, changed and ended where it is, by either library; new records go where their library says', async () => {
    const previous = new ScriptRunner(redis, loadScripts(), { recordLayout: 'previous' });
    expect(previous.libraryName).not.toBe(scripts.libraryName);
    const sku = await seedSku(10);
    const compactId = idInOwnWindow();
    const previousId = bucketMate(compactId);
    const create = (runner: ScriptRunner, id: string) =>
      createOne(runner, [keys.idempotency('client-1', randomBytes(6).toString('hex')), keys.reservation(id), ...stateKeys(sku)], ['fp-1', id, 'client-1', '', hourMs, hourMs, hourMs, 100, sku, 1]);
    expect((await create(scripts, compactId))[0]).toBe(1);
    expect((await create(previous, previousId))[0]).toBe(1);
    expect(await redis.hkeys(keys.reservation(compactId))).toEqual([compactId.slice(recordWindowChars)]);
    expect(await redis.hkeys(keys.reservationPrevious(previousId))).toEqual([previousId]);
    expect(await redis.hexists(keys.reservation(previousId), previousId.slice(recordWindowChars))).toBe(0);
    // Each library reads both.
    for (const runner of [scripts, previous]) {
      expect(await readReservation(runner, keys, compactId)).toMatchObject({ status: 'pending', lines: [{ sku, quantity: 1 }] });
      expect(await readReservation(runner, keys, previousId)).toMatchObject({ status: 'pending', lines: [{ sku, quantity: 1 }] });
    }
    // Changed by the other library: written back where it was found, never twice, and the
    // lifetime kept is that of the key it is in (a confirmed record's bucket never expires).
    expect((await scripts.run('confirmReservation', lineKeys(previousId, [[sku, 1]]), [previousId]))[0]).toBe(1);
    expect((await previous.run('releaseReservation', lineKeys(compactId, [[sku, 1]]), [compactId]))).toEqual([1, 'released']);
    expect((await redis.hkeys(keys.reservationPrevious(previousId))).sort()).toEqual(['~', previousId].sort());
    expect(await redis.pttl(keys.reservationPrevious(previousId))).toBe(-1);
    expect(await redis.hkeys(keys.reservation(compactId))).toEqual([compactId.slice(recordWindowChars)]);
    expect(await redis.pttl(keys.reservation(compactId))).toBeGreaterThan(0);
    expect((await readReservation(scripts, keys, previousId))?.status).toBe('confirmed');
    expect((await readReservation(previous, keys, compactId))?.status).toBe('released');
    // Not opened again beside it, and forgotten where it is.
    expect(await scripts.run('openRecord', [keys.reservation(previousId)], [previousId, 'client-1', '', Date.now(), Date.now() + 1000, `${sku}:1`, hourMs])).toEqual([2]);
    expect(await scripts.run('forgetRecord', [keys.reservation(previousId)], [previousId, 9])).toEqual([1]);
    expect(await redis.hkeys(keys.reservationPrevious(previousId))).toEqual([]);
    expect(await readReservation(scripts, keys, previousId)).toBeUndefined();
  });

  it('a shorter retention never shortens a bucket, and a drop time already past never deletes its other records', async () => {
    const sku = await seedSku(10);
    const kept = reserve({ lines: [[sku, 1]], id: idInOwnWindow(), ttlMs: 60_000 });
    expect((await kept.reply)[0]).toBe(1);
    const bucket = keys.reservation(kept.id);
    const before = await redis.pexpiretime(bucket);
    const past = bucketMate(kept.id);
    expect(await open(past, { createdAt: Date.now() - 10_000, expiresAt: Date.now() - 9_000, lines: `${sku}:1`, retentionMs: 1 })).toEqual([1]);
    expect(await redis.pexpiretime(bucket)).toBe(before);
    expect((await readReservation(scripts, keys, kept.id))?.status).toBe('pending');
    expect((await readReservation(scripts, keys, past))?.status).toBe('pending');
  });
});

describe('releaseReservation', () => {
  it('returns units, marks it released, and answers the same again', async () => {
    const sku = await seedSku(5);
    const call = reserve({ lines: [[sku, 3]] });
    await call.reply;
    expect(await release(call.id, [[sku, 3]])).toEqual([1, 'released']);
    expect(await skuState(sku)).toMatchObject({ reserved: 0 });
    expect(await redis.zcard(keys.skuHolds(sku))).toBe(0);
    expect(await recordFields(call.id, 's').then(([value]) => value)).toBe('released');
    expect(await release(call.id, [[sku, 3]])).toEqual([2, 'released']);
    expect(await skuState(sku)).toMatchObject({ reserved: 0 });
  });

  it('marks an expired hold expired and returns its units if still held', async () => {
    const sku = await seedSku(5);
    const call = reserve({ lines: [[sku, 4]], ttlMs: 1 });
    await call.reply;
    await sleep(5);
    expect(await release(call.id, [[sku, 4]])).toEqual([1, 'expired']);
    expect(await skuState(sku)).toMatchObject({ reserved: 0 });
  });

  it('does not return units twice when a reserve already reclaimed the expired hold', async () => {
    const sku = await seedSku(5);
    const expired = reserve({ lines: [[sku, 4]], ttlMs: 1 });
    await expired.reply;
    await sleep(5);
    await reserve({ lines: [[sku, 1]] }).reply;
    expect(await skuState(sku)).toMatchObject({ reserved: 1 });
    expect(await release(expired.id, [[sku, 4]])).toEqual([1, 'expired']);
    expect(await skuState(sku)).toMatchObject({ reserved: 1 });
  });

  it('refuses a reservation past pending (-2) and an unknown one (-1)', async () => {
    const sku = await seedSku(5);
    const call = reserve({ lines: [[sku, 1]] });
    await call.reply;
    await patchRecord(redis, keys, call.id, { s: 'confirmed' });
    expect(await release(call.id, [[sku, 1]])).toEqual([-2, 'confirmed']);
    expect(await skuState(sku)).toMatchObject({ reserved: 1 });
    expect(await release(newId(), [])).toEqual([-1]);
  });

  it('leaves a pending debit alone', async () => {
    const sku = await seedSku(10, { debit: 2, did: 'debit-1' });
    const call = reserve({ lines: [[sku, 3]] });
    await call.reply;
    expect(await release(call.id, [[sku, 3]])).toEqual([1, 'released']);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 1, reserved: 0, debit: 2, did: 'debit-1' });
  });
});

describe('readSku', () => {
  it('reads counters after reclaiming expired holds, and -1 for a missing SKU', async () => {
    const sku = await seedSku(5, { pos: 3 });
    const held = reserve({ lines: [[sku, 2]], ttlMs: 1 });
    const [, createdAt, expiresAt] = (await held.reply) as number[];
    await sleep(5);
    // The reply ends with the reclaim report: when, and which hold with its expiry.
    const reply = await readSku(sku);
    expect(reply.slice(0, 4)).toEqual([1, 5, 0, 3]);
    const [reclaimedAt, member, score] = reply[4] as unknown as [number, string, string];
    expect(member).toBe(`${held.id}:2`);
    expect(Number(score)).toBe(expiresAt);
    expect(expiresAt).toBe(createdAt! + 1);
    expect(reclaimedAt).toBeGreaterThanOrEqual(expiresAt!);
    // Nothing reclaimed: no report.
    expect(await readSku(sku)).toEqual([1, 5, 0, 3]);
    expect(await skuState(sku)).toEqual({ onHand: 5, pos: 3, reserved: 0, debit: 0, did: null });
    expect(await redis.zcard(keys.skuHolds(sku))).toBe(0);
    const missing = uniqueName('NOPE');
    expect(await readSku(missing)).toEqual([-1]);
    expect(await redis.exists(keys.skuState(missing))).toBe(0);
  });

  it('reports on-hand net of a pending debit, changing nothing', async () => {
    const sku = await seedSku(10, { pos: 2, debit: 4, did: 'debit-1' });
    await reserve({ lines: [[sku, 1]] }).reply;
    expect(await readSku(sku)).toEqual([1, 6, 1, 2]);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 2, reserved: 1, debit: 4, did: 'debit-1' });
  });
});

describe('initSku', () => {
  it('creates the state once, at the ledger position, and never overwrites it', async () => {
    const sku = uniqueName('L');
    expect(await initSku(sku, 7, 3)).toEqual([1, 0]);
    expect(await rawState(sku)).toEqual({ onHand: '7', pos: '3', reserved: '0', debit: '0' });
    expect(await initSku(sku, 99, 9)).toEqual([0]);
    expect(await rawState(sku)).toEqual({ onHand: '7', pos: '3', reserved: '0', debit: '0' });
  });

  it('never overwrites a live state, its pending debit included', async () => {
    const sku = await seedSku(10, { pos: 5, debit: 2, did: 'debit-1' });
    await reserve({ lines: [[sku, 3]] }).reply;
    expect(await initSku(sku, 50, 6)).toEqual([0]);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 5, reserved: 3, debit: 2, did: 'debit-1' });
  });

  it('sums the holds that outlived the state into reserved, so they keep their units', async () => {
    const sku = uniqueName('L');
    await redis.zadd(keys.skuHolds(sku), Date.now() + hourMs, 'pending-a:2', '+inf', 'confirmed-b:3');
    expect(await initSku(sku, 10, 4)).toEqual([1, 2]);
    expect(await rawState(sku)).toEqual({ onHand: '10', pos: '4', reserved: '5', debit: '0' });
    expect(await holds(sku)).toEqual(['pending-a:2', 'confirmed-b:3']);
    expect(await readSku(sku)).toEqual([1, 10, 5, 4]);
  });

  it('refuses to rebuild when more holds than the limit outlived the state (-1), creating nothing', async () => {
    const sku = uniqueName('L');
    await redis.zadd(keys.skuHolds(sku), Date.now() + hourMs, 'a:1', Date.now() + hourMs, 'b:2', '+inf', 'c:3');
    expect(await initSku(sku, 7, 3, 2)).toEqual([-1, 3]);
    expect(await redis.exists(keys.skuState(sku))).toBe(0);
    expect(await redis.zcard(keys.skuHolds(sku))).toBe(3);
    // At the limit exactly it rebuilds.
    expect(await initSku(sku, 7, 3, 3)).toEqual([1, 3]);
    expect(await skuState(sku)).toEqual({ onHand: 7, pos: 3, reserved: 6, debit: 0, did: null });
  });
});

describe('applyEntries', () => {
  it("applies entries in ledger order, on-hand becoming each entry's on_hand_after", async () => {
    const sku = await seedSku(10, { pos: 3 });
    expect(await applyEntries(sku, { seq: 4, delta: 5, after: 15 }, { seq: 5, delta: -2, after: 13 }, { seq: 6, delta: 1, after: 14 })).toEqual([1, 6, 14, 0, 0]);
    expect(await rawState(sku)).toEqual({ onHand: '14', pos: '6', reserved: '0', debit: '0' });
    // On-hand is set to the ledger's on_hand_after, not moved by the delta: a drifted state is
    // equal to the ledger again once the next entry is applied.
    await redis.hset(keys.skuState(sku), 'onHand', 99);
    expect(await applyEntries(sku, { seq: 7, delta: 1, after: 15 })).toEqual([1, 7, 15, 0, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 15, pos: 7, reserved: 0, debit: 0, did: null });
  });

  it('applies a mixed batch (receipt, allocation, debited decrease, deallocation) in one step', async () => {
    const sku = await seedSku(10, { pos: 1 });
    const id = await confirmed([[sku, 4]]);
    await redis.hset(keys.skuState(sku), 'debit', 3, 'did', 'debit-1');
    const other = reserve({ lines: [[sku, 1]] });
    await other.reply;
    const reply = await applyEntries(
      sku,
      { seq: 2, delta: 5, after: 15 },
      { seq: 3, delta: -4, after: 11, kind: 'allocation', res: id },
      { seq: 4, delta: -3, after: 8, debit: 'debit-1' },
      { seq: 5, delta: 4, after: 12, kind: 'deallocation', res: id },
    );
    expect(reply).toEqual([1, 5, 12, 1, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 12, pos: 5, reserved: 1, debit: 0, did: null });
    expect(await holds(sku)).toEqual([`${other.id}:1`]);
  });

  it('skips entries at or below pos, applying each entry exactly once', async () => {
    const sku = await seedSku(14, { pos: 6 });
    // Entries 5 and 6 are in on-hand already (their on_hand_after must not be written back).
    expect(await applyEntries(sku, { seq: 5, delta: -2, after: 90 }, { seq: 6, delta: 1, after: 91 }, { seq: 7, delta: 3, after: 17 })).toEqual([1, 7, 17, 0, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 17, pos: 7, reserved: 0, debit: 0, did: null });
    // Sent again (with an on_hand_after that would show if it were written), alone or behind.
    expect(await applyEntries(sku, { seq: 7, delta: 3, after: 50 })).toEqual([1, 7, 17, 0, 0]);
    expect(await applyEntries(sku, { seq: 2, delta: 5, after: 5 })).toEqual([1, 7, 17, 0, 0]);
    expect(await rawState(sku)).toEqual({ onHand: '17', pos: '7', reserved: '0', debit: '0' });
  });

  it('reports a gap {0, pos} without applying past it; the entries before it are applied', async () => {
    const sku = await seedSku(10, { pos: 3 });
    expect(await applyEntries(sku, { seq: 4, delta: 2, after: 12 }, { seq: 6, delta: 8, after: 20 }, { seq: 7, delta: 1, after: 21 })).toEqual([0, 4]);
    expect(await skuState(sku)).toEqual({ onHand: 12, pos: 4, reserved: 0, debit: 0, did: null });
    expect(await applyEntries(sku, { seq: 6, delta: 8, after: 20 })).toEqual([0, 4]);
    expect(await skuState(sku)).toEqual({ onHand: 12, pos: 4, reserved: 0, debit: 0, did: null });
    // The caller fills the gap from the ledger and sends the entries again.
    expect(await applyEntries(sku, { seq: 5, delta: -2, after: 10 }, { seq: 6, delta: 8, after: 18 }, { seq: 7, delta: 1, after: 19 })).toEqual([1, 7, 19, 0, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 19, pos: 7, reserved: 0, debit: 0, did: null });
  });

  it('a gap touches neither the holds nor the debit of the entries past it', async () => {
    const sku = await seedSku(10, { pos: 3, debit: 2, did: 'debit-1' });
    const id = await confirmed([[sku, 3]]);
    expect(await applyEntries(sku, { seq: 5, delta: -2, after: 8, debit: 'debit-1' }, { seq: 6, delta: -3, after: 5, kind: 'allocation', res: id })).toEqual([0, 3]);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 3, reserved: 3, debit: 2, did: 'debit-1' });
    expect(await holds(sku)).toEqual([`${id}:3`]);
  });

  it('an allocation removes its hold (resId:qty) and lowers reserved in the same step, once', async () => {
    const sku = await seedSku(10, { pos: 2 });
    const id = await confirmed([[sku, 3]]);
    const other = reserve({ lines: [[sku, 2]] });
    await other.reply;
    // Available is 10 - 5 = 5 before, and stays 5: reserved and on-hand go down together.
    expect(await applyEntries(sku, { seq: 3, delta: -3, after: 7, kind: 'allocation', res: id })).toEqual([1, 3, 7, 2, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 7, pos: 3, reserved: 2, debit: 0, did: null });
    expect(await holds(sku)).toEqual([`${other.id}:2`]);
    expect(await applyEntries(sku, { seq: 3, delta: -3, after: 7, kind: 'allocation', res: id })).toEqual([1, 3, 7, 2, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 7, pos: 3, reserved: 2, debit: 0, did: null });
    expect(await holds(sku)).toEqual([`${other.id}:2`]);
  });

  it('an allocation only removes the hold of its own quantity', async () => {
    const sku = await seedSku(10, { pos: 2 });
    const id = await confirmed([[sku, 3]]);
    // An entry for 2 units does not name the hold "<id>:3".
    expect(await applyEntries(sku, { seq: 3, delta: -2, after: 8, kind: 'allocation', res: id })).toEqual([1, 3, 8, 3, 0]);
    expect(await holds(sku)).toEqual([`${id}:3`]);
  });

  it('an allocation at or below pos whose hold is still there only removes the hold', async () => {
    const sku = await seedSku(10, { pos: 4 });
    const id = await confirmed([[sku, 3]]);
    // Redis loses the SKU state while the commit is in flight; the ledger already has the
    // allocation at 5, and the state is rebuilt there with the surviving hold in reserved.
    await redis.del(keys.skuState(sku));
    expect(await initSku(sku, 7, 5)).toEqual([1, 1]);
    expect(await skuState(sku)).toEqual({ onHand: 7, pos: 5, reserved: 3, debit: 0, did: null });
    expect(await applyEntries(sku, { seq: 5, delta: -3, after: 7, kind: 'allocation', res: id })).toEqual([1, 5, 7, 0, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 7, pos: 5, reserved: 0, debit: 0, did: null });
    expect(await redis.zcard(keys.skuHolds(sku))).toBe(0);
    expect(await applyEntries(sku, { seq: 5, delta: -3, after: 7, kind: 'allocation', res: id })).toEqual([1, 5, 7, 0, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 7, pos: 5, reserved: 0, debit: 0, did: null });
  });

  it('a decrease absorbs the pending debit it names, and not another', async () => {
    const named = await seedSku(10, { pos: 4, debit: 3, did: 'debit-1' });
    expect(await applyEntries(named, { seq: 5, delta: -3, after: 7, debit: 'debit-1' })).toEqual([1, 5, 7, 0, 0]);
    expect(await rawState(named)).toEqual({ onHand: '7', pos: '5', reserved: '0', debit: '0' });
    const other = await seedSku(10, { pos: 4, debit: 3, did: 'debit-1' });
    expect(await applyEntries(other, { seq: 5, delta: -2, after: 8, debit: 'debit-2' })).toEqual([1, 5, 8, 0, 3]);
    expect(await skuState(other)).toEqual({ onHand: 8, pos: 5, reserved: 0, debit: 3, did: 'debit-1' });
    // An entry without a debit leaves the pending one alone as well.
    expect(await applyEntries(other, { seq: 6, delta: 4, after: 12 })).toEqual([1, 6, 12, 0, 3]);
    expect(await skuState(other)).toEqual({ onHand: 12, pos: 6, reserved: 0, debit: 3, did: 'debit-1' });
  });

  it('available never jumps when a debit is absorbed: on-hand drops as the debit goes', async () => {
    const sku = await seedSku(10, { pos: 4, reserved: 0, debit: 4, did: 'debit-1' });
    expect(await readSku(sku)).toEqual([1, 6, 0, 4]);
    await applyEntries(sku, { seq: 5, delta: -4, after: 6, debit: 'debit-1' });
    expect(await readSku(sku)).toEqual([1, 6, 0, 5]);
  });

  it('an entry already in on-hand still absorbs its pending debit (its units are counted there)', async () => {
    const sku = await seedSku(7, { pos: 5, debit: 3, did: 'debit-1' });
    expect(await applyEntries(sku, { seq: 5, delta: -3, after: 7, debit: 'debit-1' })).toEqual([1, 5, 7, 0, 0]);
    expect(await rawState(sku)).toEqual({ onHand: '7', pos: '5', reserved: '0', debit: '0' });
  });

  it('adjusts a running audit of the holds when it removes a hold', async () => {
    const sku = await seedSku(10, { pos: 1 });
    const id = await confirmed([[sku, 3]]);
    const audit = (mode: 'start' | 'next') => scripts.run('auditHolds', stateKeys(sku), ['run-apply', mode, 10, 10, '1']);
    expect(await audit('start')).toEqual([1, 1]);
    expect(await applyEntries(sku, { seq: 2, delta: -3, after: 7, kind: 'allocation', res: id })).toEqual([1, 2, 7, 0, 0]);
    // The hold left after the audit summed it: no drift, nothing corrected.
    expect(await audit('next')).toEqual([2, 0, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 7, pos: 2, reserved: 0, debit: 0, did: null });
  });

  it('refuses a batch with a malformed entry after valid ones before writing anything', async () => {
    const sku = await seedSku(10, { pos: 3 });
    await expect(applyEntries(sku, { seq: 4, delta: 2, after: 12 }, { seq: 5, delta: 0, after: 12 })).rejects.toThrow(/ASSERT bad entry/);
    expect(await rawState(sku)).toEqual({ onHand: '10', pos: '3', reserved: '0', debit: '0' });
  });

  it('checks a hold against reserved before the entry writes anything', async () => {
    const sku = await seedSku(10, { pos: 3, reserved: 1 });
    await redis.zadd(keys.skuHolds(sku), '+inf', 'r:3');
    await expect(applyEntries(sku, { seq: 4, delta: -3, after: 7, kind: 'allocation', res: 'r' })).rejects.toThrow(/ASSERT reserved below a hold/);
    expect(await rawState(sku)).toEqual({ onHand: '10', pos: '3', reserved: '1', debit: '0' });
    expect(await holds(sku)).toEqual(['r:3']);
  });

  it('treats a state written before ledger positions (version, ov, ls; no pos) as missing, and a rebuild replaces it', async () => {
    const sku = uniqueName('L');
    await redis.hset(keys.skuState(sku), 'onHand', 10, 'reserved', 5, 'version', 4, 'ov', 7, 'ls', 12);
    await redis.zadd(keys.skuHolds(sku), '+inf', 'someone:2');
    expect(await applyEntries(sku, { seq: 1, delta: 1, after: 11 })).toEqual([-1]);
    expect(await scripts.run('readSku', stateKeys(sku), [100])).toEqual([-1]);
    expect((await scripts.run('inspectSku', stateKeys(sku), [100, 100, '0']))[0]).toBe(-1);
    expect(await scripts.run('correctOnHand', [keys.skuState(sku)], [3, 9, '0'])).toEqual([-1]);
    expect(await scripts.run('initSku', stateKeys(sku), [9, 3, 100])).toEqual([1, 1]);
    // Rebuilt at the ledger's position, reserved summed from the surviving hold, old fields gone.
    expect(await redis.hgetall(keys.skuState(sku))).toEqual({ onHand: '9', pos: '3', reserved: '2', debit: '0' });
  });

  it('replies {-1} for a missing state and creates nothing', async () => {
    const sku = uniqueName('L');
    await redis.zadd(keys.skuHolds(sku), '+inf', 'someone:2');
    expect(await applyEntries(sku, { seq: 1, delta: -2, after: 3, kind: 'allocation', res: 'someone' })).toEqual([-1]);
    expect(await redis.exists(keys.skuState(sku))).toBe(0);
    expect(await holds(sku)).toEqual(['someone:2']);
  });

  it('refuses malformed entries before writing anything', async () => {
    const sku = await seedSku(10, { pos: 3 });
    const id = await confirmed([[sku, 2]]);
    const before = await rawState(sku);
    const raw = (args: Array<string | number>) => scripts.run('applyEntries', stateKeys(sku), args);
    await expect(raw([])).rejects.toThrow(/ASSERT ARGV must be 6 per entry/);
    await expect(raw([4, 1, 11, 'adjustment', ''])).rejects.toThrow(/ASSERT ARGV must be 6 per entry/);
    await expect(applyEntries(sku, { seq: 0, delta: 1, after: 11 })).rejects.toThrow(/ASSERT bad entry/);
    await expect(applyEntries(sku, { seq: 4, delta: 0, after: 10 })).rejects.toThrow(/ASSERT bad entry/);
    await expect(applyEntries(sku, { seq: 4, delta: -11, after: -1 })).rejects.toThrow(/ASSERT bad entry/);
    await expect(raw([4, 'x', 11, 'adjustment', '', ''])).rejects.toThrow(/ASSERT bad entry/);
    await expect(applyEntries(sku, { seq: 4, delta: 2, after: 12, kind: 'allocation', res: id })).rejects.toThrow(/ASSERT bad allocation/);
    await expect(applyEntries(sku, { seq: 4, delta: -2, after: 8, kind: 'allocation', res: '' })).rejects.toThrow(/ASSERT bad allocation/);
    expect(await rawState(sku)).toEqual(before);
    expect(await holds(sku)).toEqual([`${id}:2`]);
  });
});

describe('prepareStockChange', () => {
  it('reports Redis behind the ledger {0, pos} and stages nothing', async () => {
    const sku = await seedSku(10, { pos: 3 });
    expect(await prepare(sku, 5, 12, ['debit-1', 2])).toEqual([0, 3]);
    expect(await rawState(sku)).toEqual({ onHand: '10', pos: '3', reserved: '0', debit: '0' });
    // Behind with an orphan-looking debit: it may belong to the entries not applied yet, so it stays.
    const pending = await seedSku(10, { pos: 3, debit: 2, did: 'debit-0' });
    expect(await prepare(pending, 4, 8)).toEqual([0, 3]);
    expect(await skuState(pending)).toEqual({ onHand: 10, pos: 3, reserved: 0, debit: 2, did: 'debit-0' });
  });

  it('stages a decrease as a pending debit: available drops at once, on-hand waits for the entry', async () => {
    const sku = await seedSku(10, { pos: 3 });
    await reserve({ lines: [[sku, 2]] }).reply;
    expect(await prepare(sku, 3, 10, ['debit-1', 5])).toEqual([1, 10, 2, 0, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 3, reserved: 2, debit: 5, did: 'debit-1' });
    expect(await readSku(sku)).toEqual([1, 5, 2, 3]);
    expect((await reserve({ lines: [[sku, 4]] }).reply)[0]).toBe(-1);
    // The committed entry absorbs it.
    expect(await applyEntries(sku, { seq: 4, delta: -5, after: 5, debit: 'debit-1' })).toEqual([1, 4, 5, 2, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 5, pos: 4, reserved: 2, debit: 0, did: null });
  });

  it('stages nothing for an increase (it is applied after the COMMIT)', async () => {
    const sku = await seedSku(10, { pos: 3 });
    expect(await prepare(sku, 3, 10)).toEqual([1, 10, 0, 0, 0]);
    expect(await rawState(sku)).toEqual({ onHand: '10', pos: '3', reserved: '0', debit: '0' });
  });

  it('refuses a debit that would take on-hand below reserved (-1) and changes nothing', async () => {
    const sku = await seedSku(10, { pos: 3 });
    const held = reserve({ lines: [[sku, 8]] });
    await held.reply;
    const before = await rawState(sku);
    expect(await prepare(sku, 3, 10, ['debit-1', 3])).toEqual([-1, 10, 8]);
    expect(await rawState(sku)).toEqual(before);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 3, reserved: 8, debit: 0, did: null });
    expect(await holds(sku)).toEqual([`${held.id}:8`]);
    // Down to exactly what is reserved is allowed.
    expect(await prepare(sku, 3, 10, ['debit-2', 2])).toEqual([1, 10, 8, 0, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 3, reserved: 8, debit: 2, did: 'debit-2' });
  });

  it('reclaims expired holds before checking the debit', async () => {
    const sku = await seedSku(10, { pos: 3, reserved: 8 });
    await redis.zadd(keys.skuHolds(sku), 1, 'gone:8');
    const reply = await prepare(sku, 3, 10, ['debit-1', 5]);
    expect(reply.slice(0, 5)).toEqual([1, 10, 0, 0, 0]);
    expect((reply[5] as unknown as unknown[]).slice(1)).toEqual(['gone:8', '1']);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 3, reserved: 0, debit: 5, did: 'debit-1' });
    expect(await redis.zcard(keys.skuHolds(sku))).toBe(0);
  });

  it('rebuilds a missing state at the ledger position, summing surviving holds into reserved', async () => {
    const sku = uniqueName('L');
    const now = Date.now();
    await redis.zadd(keys.skuHolds(sku), now + hourMs, 'pending-a:2', '+inf', 'confirmed-b:3', 1, 'expired-c:4');
    await redis.set(keys.skuUnknown(sku), '1');
    // The expired hold is summed, then reclaimed before the check.
    const reply = await prepare(sku, 7, 20, ['debit-1', 4]);
    expect(reply.slice(0, 5)).toEqual([1, 20, 5, 0, 0]);
    expect((reply[5] as unknown as unknown[]).slice(1)).toEqual(['expired-c:4', '1']);
    expect(await rawState(sku)).toEqual({ onHand: '20', pos: '7', reserved: '5', debit: '4', did: 'debit-1' });
    expect(await holds(sku)).toEqual(['pending-a:2', 'confirmed-b:3']);
    expect(await redis.exists(keys.skuUnknown(sku))).toBe(0);
    // With no holds at all: a plain state at the ledger position.
    const bare = uniqueName('L');
    expect(await prepare(bare, 2, 6)).toEqual([1, 6, 0, 0, 0]);
    expect(await rawState(bare)).toEqual({ onHand: '6', pos: '2', reserved: '0', debit: '0' });
  });

  it('refuses to rebuild when more holds than the limit outlived the state (-2), creating nothing', async () => {
    const sku = uniqueName('L');
    await redis.zadd(keys.skuHolds(sku), '+inf', 'a:1', '+inf', 'b:2', '+inf', 'c:3');
    expect(await prepare(sku, 4, 10, ['debit-1', 1], 2)).toEqual([-2, 3]);
    expect(await redis.exists(keys.skuState(sku))).toBe(0);
    expect(await redis.zcard(keys.skuHolds(sku))).toBe(3);
  });

  it('corrects on-hand drift at the same position, keeping reserved', async () => {
    const sku = await seedSku(99, { pos: 4 });
    await reserve({ lines: [[sku, 2]] }).reply;
    expect(await prepare(sku, 4, 20)).toEqual([1, 20, 2, 1, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 20, pos: 4, reserved: 2, debit: 0, did: null });
    // And checks the debit against the corrected on-hand, not the drifted one.
    expect(await prepare(sku, 4, 20, ['debit-1', 19])).toEqual([-1, 20, 2]);
    expect(await prepare(sku, 4, 20, ['debit-2', 18])).toEqual([1, 20, 2, 0, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 20, pos: 4, reserved: 2, debit: 18, did: 'debit-2' });
  });

  it('releases an orphan debit at the same position, then stages its own', async () => {
    const sku = await seedSku(10, { pos: 4, debit: 3, did: 'debit-old' });
    expect(await prepare(sku, 4, 10, ['debit-new', 2])).toEqual([1, 10, 0, 0, 3]);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 4, reserved: 0, debit: 2, did: 'debit-new' });
    // The old change's late release, by its id, cannot touch the new debit.
    expect(await releaseDebit(sku, 'debit-old')).toEqual([0]);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 4, reserved: 0, debit: 2, did: 'debit-new' });
    // An increase releases the orphan too.
    const increase = await seedSku(10, { pos: 4, debit: 3, did: 'debit-old' });
    expect(await prepare(increase, 4, 10)).toEqual([1, 10, 0, 0, 3]);
    expect(await rawState(increase)).toEqual({ onHand: '10', pos: '4', reserved: '0', debit: '0' });
  });

  it('asserts when Redis is ahead of the ledger, changing no state', async () => {
    const sku = await seedSku(10, { pos: 6 });
    await expect(prepare(sku, 5, 10, ['debit-1', 1])).rejects.toThrow(/ASSERT Redis at position 6, ahead of the ledger at 5/);
    expect(await rawState(sku)).toEqual({ onHand: '10', pos: '6', reserved: '0', debit: '0' });
  });

  it('refuses inconsistent arguments before writing anything', async () => {
    const sku = await seedSku(10, { pos: 4 });
    await redis.set(keys.skuUnknown(sku), '1');
    await expect(prepare(sku, 4, 10, ['', 2])).rejects.toThrow(/ASSERT a debit needs units and an id/);
    await expect(prepare(sku, 4, 10, ['debit-1', 0])).rejects.toThrow(/ASSERT a debit needs units and an id/);
    await expect(prepare(sku, -1, 10)).rejects.toThrow(/ASSERT bad ledger position/);
    await expect(prepare(sku, 4, -1)).rejects.toThrow(/ASSERT bad ledger position/);
    expect(await rawState(sku)).toEqual({ onHand: '10', pos: '4', reserved: '0', debit: '0' });
    expect(await redis.exists(keys.skuUnknown(sku))).toBe(1);
  });
});

describe('releaseDebit', () => {
  it('releases a pending debit by its id only, once', async () => {
    const sku = await seedSku(10, { pos: 4, debit: 3, did: 'debit-1' });
    expect(await releaseDebit(sku, 'debit-2')).toEqual([0]);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 4, reserved: 0, debit: 3, did: 'debit-1' });
    expect(await releaseDebit(sku, 'debit-1')).toEqual([1, 3]);
    expect(await rawState(sku)).toEqual({ onHand: '10', pos: '4', reserved: '0', debit: '0' });
    expect(await releaseDebit(sku, 'debit-1')).toEqual([0]);
    expect(await rawState(sku)).toEqual({ onHand: '10', pos: '4', reserved: '0', debit: '0' });
  });

  it('does nothing once the debit was absorbed by its entry', async () => {
    const sku = await seedSku(10, { pos: 4, debit: 3, did: 'debit-1' });
    await applyEntries(sku, { seq: 5, delta: -3, after: 7, debit: 'debit-1' });
    expect(await releaseDebit(sku, 'debit-1')).toEqual([0]);
    expect(await rawState(sku)).toEqual({ onHand: '7', pos: '5', reserved: '0', debit: '0' });
  });

  it('creates nothing for a missing state, and refuses an empty id', async () => {
    const sku = uniqueName('L');
    expect(await releaseDebit(sku, 'debit-1')).toEqual([0]);
    expect(await redis.exists(keys.skuState(sku))).toBe(0);
    const live = await seedSku(10, { debit: 3, did: 'debit-1' });
    await expect(releaseDebit(live, '')).rejects.toThrow(/ASSERT debit id is empty/);
    expect(await skuState(live)).toMatchObject({ debit: 3, did: 'debit-1' });
  });
});

describe('beginIdempotent, settleIdempotent', () => {
  const idem = () => keys.idempotency('client-1', randomBytes(6).toString('hex'));

  it('begins once, reports in flight, stores, replays, and refuses another fingerprint', async () => {
    const key = idem();
    expect(await scripts.run('beginIdempotent', [key], ['fp', 30_000])).toEqual([1]);
    const inFlight = await scripts.run('beginIdempotent', [key], ['fp', 30_000]);
    expect(inFlight[0]).toBe(-4);
    expect(await scripts.run('settleIdempotent', [key], ['fp', 'store', 201, '{"a":1}', hourMs])).toEqual([1]);
    expect(await scripts.run('beginIdempotent', [key], ['fp', 30_000])).toEqual([2, 201, '{"a":1}']);
    expect(await scripts.run('beginIdempotent', [key], ['other', 30_000])).toEqual([-2]);
    expect(await redis.pttl(key)).toBeGreaterThan(hourMs - 5000);
  });

  it('forgets a failed attempt so the key can be used again, but only its own', async () => {
    const key = idem();
    await scripts.run('beginIdempotent', [key], ['fp', 30_000]);
    expect(await scripts.run('settleIdempotent', [key], ['other', 'forget'])).toEqual([0]);
    expect(await scripts.run('settleIdempotent', [key], ['fp', 'forget'])).toEqual([1]);
    expect(await redis.exists(key)).toBe(0);
  });
});


describe('confirmReservation, finishCommit', () => {
  it('confirms: holds stop expiring (+inf), the record persists, the fence goes to 2', async () => {
    const sku = await seedSku(5);
    const call = reserve({ lines: [[sku, 2]], ttlMs: 50 });
    await call.reply;
    const reply = await confirm(call.id, [[sku, 2]]);
    expect(reply.slice(0, 2)).toEqual([1, 2]);
    expect(await redis.zscore(keys.skuHolds(sku), `${call.id}:2`)).toBe('inf');
    expect(await redis.pttl(keys.reservation(call.id))).toBe(-1);
    expect(await recordFields(call.id, 's', 'v')).toEqual(['confirmed', '2']);
    await sleep(60);
    // Past the original expiry, a reserve reclaims nothing of it.
    expect((await reserve({ lines: [[sku, 4]] }).reply)[0]).toBe(-1);
    expect(await skuState(sku)).toMatchObject({ reserved: 2 });
    expect(await confirm(call.id, [[sku, 2]])).toEqual([2, 'confirmed', 2]);
  });

  it('refuses released (-2), expires an expired one (-3, units back), and unknown (-1)', async () => {
    const sku = await seedSku(5);
    const expired = reserve({ lines: [[sku, 3]], ttlMs: 1 });
    await expired.reply;
    await sleep(5);
    expect(await confirm(expired.id, [[sku, 3]])).toEqual([-3]);
    expect(await recordFields(expired.id, 's').then(([value]) => value)).toBe('expired');
    expect(await skuState(sku)).toMatchObject({ reserved: 0 });
    expect(await confirm(expired.id, [[sku, 3]])).toEqual([-3]);
    const released = reserve({ lines: [[sku, 1]] });
    await released.reply;
    await patchRecord(redis, keys, released.id, { s: 'released' });
    expect(await confirm(released.id, [[sku, 1]])).toEqual([-2]);
    expect(await confirm(newId(), [])).toEqual([-1]);
  });

  it('commits: the allocations are applied (holds gone, reserved and on-hand down together), then finishCommit at the fence only, once', async () => {
    const a = await seedSku(10, { pos: 5 });
    const b = await seedSku(4, { pos: 2 });
    const call = reserve({ lines: [[a, 3], [b, 4]] });
    await call.reply;
    expect(await finish('finishCommit', call.id, 2)).toEqual([0, 'pending']);
    expect(await recordFields(call.id, 's').then(([value]) => value)).toBe('pending');
    await confirm(call.id, [[a, 3], [b, 4]]);
    expect(await finish('finishCommit', call.id, 1)).toEqual([0, 'confirmed']);
    expect(await recordFields(call.id, 's', 'v', 'at')).toEqual(['confirmed', '2', null]);
    expect(await redis.pttl(keys.reservation(call.id))).toBe(-1);
    expect(await applyEntries(a, { seq: 6, delta: -3, after: 7, kind: 'allocation', res: call.id })).toEqual([1, 6, 7, 0, 0]);
    expect(await applyEntries(b, { seq: 3, delta: -4, after: 0, kind: 'allocation', res: call.id })).toEqual([1, 3, 0, 0, 0]);
    const statesBefore = await Promise.all([rawState(a), rawState(b)]);
    expect(await finish('finishCommit', call.id, 2)).toEqual([1]);
    const record = await readRecord(redis, keys, call.id);
    expect(record).toMatchObject({ s: 'committed', v: '2', l: `${a}:3,${b}:4` });
    expect(Number(record?.at)).toBeGreaterThan(Date.now() - 60_000);
    expect(await redis.pttl(keys.reservation(call.id))).toBeGreaterThan(hourMs - 5000);
    expect(await Promise.all([rawState(a), rawState(b)])).toEqual(statesBefore);
    expect(await skuState(a)).toEqual({ onHand: 7, pos: 6, reserved: 0, debit: 0, did: null });
    expect(await skuState(b)).toEqual({ onHand: 0, pos: 3, reserved: 0, debit: 0, did: null });
    expect(await redis.exists(keys.skuHolds(a), keys.skuHolds(b))).toBe(0);
    // A re-run: nothing applied twice, the record stays committed.
    expect(await applyEntries(a, { seq: 6, delta: -3, after: 7, kind: 'allocation', res: call.id })).toEqual([1, 6, 7, 0, 0]);
    expect(await finish('finishCommit', call.id, 2)).toEqual([0, 'committed']);
    expect(await recordFields(call.id, 'at').then(([value]) => value)).toBe(record?.at);
  });

  it('finishCommit on a record Redis lost answers "missing" and creates nothing', async () => {
    const id = newId();
    expect(await finish('finishCommit', id, 2)).toEqual([0, 'missing']);
    expect(await readRecord(redis, keys, id).then((record) => (record === undefined ? 0 : 1))).toBe(0);
  });
});

describe('requestCancel, finishCancel', () => {
  /** A committed reservation of `quantity` on `sku` (allocation applied at pos + 1). */
  const committedRecord = async (sku: string, quantity: number) => {
    const id = await confirmed([[sku, quantity]]);
    const state = await skuState(sku);
    const reply = await applyEntries(sku, { seq: state.pos! + 1, delta: -quantity, after: state.onHand! - quantity, kind: 'allocation', res: id });
    expect(reply[0]).toBe(1);
    expect(await finish('finishCommit', id, 2)).toEqual([1]);
    return id;
  };
  const request = (id: string, recreate: Array<string | number> = [2, 'client-1', '', 1, 2, 'X:1', hourMs]) =>
    scripts.run('requestCancel', [keys.reservation(id)], [id, ...recreate]);

  it('bumps the fence once; the deallocation is applied, then finishCancel at that fence, once', async () => {
    const sku = await seedSku(10);
    const id = await committedRecord(sku, 4);
    expect(await skuState(sku)).toEqual({ onHand: 6, pos: 2, reserved: 0, debit: 0, did: null });
    expect(await request(id)).toEqual([1, 3]);
    expect(await request(id)).toEqual([1, 3]);
    expect(await recordFields(id, 's', 'v', 'cx')).toEqual(['committed', '3', '1']);
    expect(await finish('finishCancel', id, 2)).toEqual([0, 'committed']);
    expect(await recordFields(id, 's', 'v', 'cx')).toEqual(['committed', '3', '1']);
    expect(await applyEntries(sku, { seq: 3, delta: 4, after: 10, kind: 'deallocation', res: id })).toEqual([1, 3, 10, 0, 0]);
    expect(await finish('finishCancel', id, 3)).toEqual([1]);
    const record = await readRecord(redis, keys, id);
    expect(record).toMatchObject({ s: 'cancelled', v: '3' });
    expect(record?.cx).toBeUndefined();
    expect(Number(record?.at)).toBeGreaterThan(Date.now() - 60_000);
    expect(await redis.pttl(keys.reservation(id))).toBeGreaterThan(hourMs - 5000);
    expect(await finish('finishCancel', id, 3)).toEqual([0, 'cancelled']);
    expect(await request(id)).toEqual([2, 3]);
    expect(await applyEntries(sku, { seq: 3, delta: 4, after: 10, kind: 'deallocation', res: id })).toEqual([1, 3, 10, 0, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 3, reserved: 0, debit: 0, did: null });
  });

  it('finishCancel leaves a committed reservation no one asked to cancel, and a missing one', async () => {
    const sku = await seedSku(10);
    const id = await committedRecord(sku, 2);
    expect(await finish('finishCancel', id, 2)).toEqual([0, 'committed']);
    const record = await readRecord(redis, keys, id);
    expect(record).toMatchObject({ s: 'committed', v: '2' });
    expect(record?.cx).toBeUndefined();
    const lost = newId();
    expect(await finish('finishCancel', lost, 3)).toEqual([0, 'missing']);
    expect(await readRecord(redis, keys, lost).then((record) => (record === undefined ? 0 : 1))).toBe(0);
  });

  it('recreates a forgotten record from the ledger copy, and refuses one not committed', async () => {
    const sku = await seedSku(10);
    const id = newId();
    expect(await request(id, [2, 'client-9', 'cust', 1000, 2000, `${sku}:2`, hourMs])).toEqual([1, 3]);
    expect(await readRecord(redis, keys, id)).toMatchObject({ s: 'committed', c: 'client-9', u: 'cust', l: `${sku}:2`, v: '3', cx: '1' });
    const pending = reserve({ lines: [[sku, 1]] });
    await pending.reply;
    expect(await request(pending.id)).toEqual([-1, 'pending']);
    expect(await recordFields(pending.id, 's').then(([value]) => value)).toBe('pending');
  });
});

describe('rejectReservation', () => {
  const reject = (id: string, fence: number, lines: Array<[string, number]>) =>
    scripts.run('rejectReservation', lineKeys(id, lines), [id, fence, hourMs, ...lines.map(([, quantity]) => quantity)]);

  it('rejects a confirmed reservation at its fence only: holds removed, units given back', async () => {
    const a = await seedSku(10, { pos: 3 });
    const b = await seedSku(5, { pos: 1 });
    const lines: Array<[string, number]> = [[a, 3], [b, 2]];
    const id = await confirmed(lines);
    const other = reserve({ lines: [[a, 1]] });
    await other.reply;
    expect(await reject(id, 1, lines)).toEqual([0, 'confirmed', 0]);
    expect(await skuState(a)).toMatchObject({ reserved: 4 });
    expect(await holds(a)).toContain(`${id}:3`);
    expect(await reject(id, 2, lines)).toEqual([1, 5]);
    expect(await skuState(a)).toEqual({ onHand: 10, pos: 3, reserved: 1, debit: 0, did: null });
    expect(await skuState(b)).toEqual({ onHand: 5, pos: 1, reserved: 0, debit: 0, did: null });
    expect(await holds(a)).toEqual([`${other.id}:1`]);
    expect(await redis.exists(keys.skuHolds(b))).toBe(0);
    const record = await readRecord(redis, keys, id);
    expect(record).toMatchObject({ s: 'rejected', v: '2' });
    expect(Number(record?.at)).toBeGreaterThan(Date.now() - 60_000);
    expect(await redis.pttl(keys.reservation(id))).toBeGreaterThan(hourMs - 5000);
    // Again: nothing more given back.
    expect(await reject(id, 2, lines)).toEqual([0, 'rejected', 0]);
    expect(await skuState(a)).toMatchObject({ reserved: 1 });
  });

  it('leaves a pending reservation and its holds alone', async () => {
    const sku = await seedSku(10);
    const call = reserve({ lines: [[sku, 3]] });
    await call.reply;
    expect(await reject(call.id, 1, [[sku, 3]])).toEqual([0, 'pending', 0]);
    expect(await recordFields(call.id, 's').then(([value]) => value)).toBe('pending');
    expect(await holds(sku)).toEqual([`${call.id}:3`]);
    expect(await skuState(sku)).toMatchObject({ reserved: 3 });
  });

  it('when Redis lost the record, still removes the holds the job names', async () => {
    const a = await seedSku(10);
    const b = await seedSku(10);
    const lines: Array<[string, number]> = [[a, 3], [b, 2]];
    const id = await confirmed(lines);
    await dropRecord(redis, keys, id);
    // b's hold is gone already (say, a release raced the loss): only a's units come back.
    await redis.zrem(keys.skuHolds(b), `${id}:2`);
    await redis.hincrby(keys.skuState(b), 'reserved', -2);
    expect(await reject(id, 2, lines)).toEqual([0, 'missing', 3]);
    expect(await skuState(a)).toMatchObject({ reserved: 0 });
    expect(await skuState(b)).toMatchObject({ reserved: 0 });
    expect(await redis.exists(keys.skuHolds(a), keys.skuHolds(b), keys.reservation(id))).toBe(0);
    expect(await reject(id, 2, lines)).toEqual([0, 'missing', 0]);
  });

  it('crashes on keys that do not match the lines, a programmer error', async () => {
    const sku = await seedSku(10);
    const id = await confirmed([[sku, 1]]);
    await expect(scripts.run('rejectReservation', lineKeys(id, [[sku, 1]]), [id, 2, hourMs])).rejects.toThrow(/ASSERT ARGV must be 3 \+ 1 per line/);
    await expect(scripts.run('rejectReservation', [keys.reservation(id), keys.skuState(sku)], [id, 2, hourMs, 1])).rejects.toThrow(/ASSERT KEYS must be 1 \+ 2 per line/);
    expect(await recordFields(id, 's').then(([value]) => value)).toBe('confirmed');
    expect(await skuState(sku)).toMatchObject({ reserved: 1 });
  });
});

describe('auditHolds', () => {
  const audit = (sku: string, mode: 'start' | 'next', apply = '1', chunk = 2, ties = 10) =>
    scripts.run('auditHolds', [keys.skuState(sku), keys.skuHolds(sku)], ['run-1', mode, chunk, ties, apply]);
  const hold = (sku: string, quantity: number, ttlMs: number) => reserve({ lines: [[sku, quantity]], ttlMs });

  it('finds the exact drift across chunks while holds come and go behind and ahead of the cursor', async () => {
    const sku = await seedSku(100);
    const early = hold(sku, 1, 10_000);
    await early.reply;
    await hold(sku, 2, 20_000).reply;
    await hold(sku, 3, 30_000).reply;
    await hold(sku, 4, 40_000).reply;
    await hold(sku, 5, 50_000).reply;
    // Drift: reserved says 7 more than the holds (15).
    await redis.hincrby(keys.skuState(sku), 'reserved', 7);
    expect(await audit(sku, 'start')).toEqual([1, 2]);
    // Behind the cursor: one released, one added; ahead of it: one added.
    const release = await scripts.run('releaseReservation', [keys.reservation(early.id), keys.skuState(sku), keys.skuHolds(sku)], [early.id]);
    expect(release).toEqual([1, 'released']);
    await hold(sku, 6, 15_000).reply;
    await hold(sku, 7, 3_600_000).reply;
    expect(await audit(sku, 'next')).toEqual([1, 2]);
    expect(await audit(sku, 'next')).toEqual([1, 2]);
    const done = await audit(sku, 'next');
    expect(done).toEqual([2, 15 - 1 + 6 + 7 + 7, 7]);
    expect(await skuState(sku)).toMatchObject({ reserved: 15 - 1 + 6 + 7 });
    expect(await redis.hmget(keys.skuState(sku), 'ai', 'as', 'ap')).toEqual([null, null, null]);
  });

  it('only reports in a dry run, and yields to an audit that took over', async () => {
    const sku = await seedSku(10);
    await hold(sku, 2, 10_000).reply;
    await redis.hincrby(keys.skuState(sku), 'reserved', 3);
    expect(await audit(sku, 'start', '0', 10)).toEqual([1, 1]);
    expect(await audit(sku, 'next', '0', 10)).toEqual([2, 5, 3]);
    expect(await skuState(sku)).toMatchObject({ reserved: 5 });
    await audit(sku, 'start', '0', 1);
    await scripts.run('auditHolds', [keys.skuState(sku), keys.skuHolds(sku)], ['run-2', 'start', 1, 10, '0']);
    expect(await audit(sku, 'next')).toEqual([-1]);
  });
});


describe('inspectSku', () => {
  const inspect = (sku: string, confirmedMax = 100, dryRun = false) => scripts.run('inspectSku', stateKeys(sku), [100, confirmedMax, dryRun ? '1' : '0']);

  it('returns {1, onHand, reserved, pos, debit, expiredHolds, expiredUnits, holdCount, truncated, members...}', async () => {
    const sku = await seedSku(10, { pos: 4, debit: 3, did: 'debit-1' });
    const id = await confirmed([[sku, 2]]);
    const pending = reserve({ lines: [[sku, 1]] });
    await pending.reply;
    await redis.zadd(keys.skuHolds(sku), 1, 'gone:2');
    await redis.hincrby(keys.skuState(sku), 'reserved', 2);
    // A dry run counts the expired hold (1 hold, 2 units) and reclaims nothing.
    expect(await inspect(sku, 100, true)).toEqual([1, 10, 5, 4, 3, 1, 2, 3, 0, `${id}:2`]);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 4, reserved: 5, debit: 3, did: 'debit-1' });
    expect(await redis.zscore(keys.skuHolds(sku), 'gone:2')).toBe('1');
    // For real: reclaimed. On-hand is reported gross (the ledger's), the debit beside it.
    const reclaiming = await inspect(sku);
    expect(reclaiming.slice(0, 10)).toEqual([1, 10, 3, 4, 3, 1, 2, 2, 0, `${id}:2`]);
    expect((reclaiming[10] as unknown as unknown[]).slice(1)).toEqual(['gone:2', '1']);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 4, reserved: 3, debit: 3, did: 'debit-1' });
    expect(await redis.zscore(keys.skuHolds(sku), 'gone:2')).toBeNull();
    expect(await inspect(sku)).toEqual([1, 10, 3, 4, 3, 0, 0, 2, 0, `${id}:2`]);
  });

  it('truncates the confirmed holds at the limit, and reports a missing state with its hold count', async () => {
    const sku = await seedSku(10, { pos: 2 });
    const first = await confirmed([[sku, 1]]);
    const second = await confirmed([[sku, 2]]);
    const members = [`${first}:1`, `${second}:2`].sort();
    const one = await inspect(sku, 1);
    expect(one.slice(0, 9)).toEqual([1, 10, 3, 2, 0, 0, 0, 2, 1]);
    expect(one.slice(9)).toEqual([members[0]]);
    const all = await inspect(sku, 2);
    expect(all.slice(0, 9)).toEqual([1, 10, 3, 2, 0, 0, 0, 2, 0]);
    expect(all.slice(9)).toEqual(members);
    const lost = uniqueName('L');
    await redis.zadd(keys.skuHolds(lost), '+inf', 'x:1', '+inf', 'y:2');
    expect(await inspect(lost)).toEqual([-1, 2]);
    expect(await redis.exists(keys.skuState(lost))).toBe(0);
  });
});

describe('correctOnHand', () => {
  it('is a compare-and-set on pos: a moved position changes nothing', async () => {
    const sku = await seedSku(10, { pos: 4, debit: 3, did: 'debit-1' });
    expect(await correctOnHand(sku, 3, 8)).toEqual([0, 4]);
    expect(await correctOnHand(sku, 5, 8)).toEqual([0, 4]);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 4, reserved: 0, debit: 3, did: 'debit-1' });
  });

  it('a dry run reports the drift and the pending debit, and changes nothing', async () => {
    const sku = await seedSku(10, { pos: 4, debit: 3, did: 'debit-1' });
    expect(await correctOnHand(sku, 4, 8, true)).toEqual([1, 10, 3]);
    expect(await skuState(sku)).toEqual({ onHand: 10, pos: 4, reserved: 0, debit: 3, did: 'debit-1' });
  });

  it('sets on-hand to the ledger at the same position and releases a pending debit', async () => {
    const sku = await seedSku(10, { pos: 4, debit: 3, did: 'debit-1' });
    await reserve({ lines: [[sku, 2]] }).reply;
    expect(await correctOnHand(sku, 4, 8)).toEqual([1, 10, 3]);
    expect(await skuState(sku)).toEqual({ onHand: 8, pos: 4, reserved: 2, debit: 0, did: null });
    // No drift and no debit left: done, nothing to change.
    expect(await correctOnHand(sku, 4, 8)).toEqual([1, 8, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 8, pos: 4, reserved: 2, debit: 0, did: null });
    // The late release of the debit finds nothing.
    expect(await releaseDebit(sku, 'debit-1')).toEqual([0]);
  });

  it('replies {-1} for a missing state and creates nothing', async () => {
    const sku = uniqueName('L');
    expect(await correctOnHand(sku, 1, 5)).toEqual([-1]);
    expect(await redis.exists(keys.skuState(sku))).toBe(0);
  });
});

describe('customer entries on a cluster: admitCustomer, pinCustomer, forgetCustomer (lua/includes/customer-entries.lua)', () => {
  const customer = () => ({ clientId: 'client-1', customerId: uniqueName('cu') });
  const entriesKey = (ref: { clientId: string; customerId: string }) => keys.customerEntries(ref.clientId, ref.customerId);
  const admit = (ref: { clientId: string; customerId: string }, id: string, lines: Array<[string, number]>, options: { activeMax?: number; limits?: Array<[string, number]>; expiresAtMs?: number } = {}) =>
    admitCustomer(scripts, keys, ref, { reservationId: id, expiresAtMs: options.expiresAtMs ?? Date.now() + hourMs, activeMax: options.activeMax ?? 0, lines: lines.map(([sku, quantity]) => ({ sku, quantity })), limits: new Map(options.limits ?? []) });

  it('admits up to a SKU\'s limit in units and refuses past it with what was held and the entries that counted; other SKUs and carts are not counted', async () => {
    const ref = customer();
    const [a, b] = [newId(), newId()];
    expect(await admit(ref, a, [['X', 2], ['Y', 5]], { limits: [['X', 3]] })).toEqual({ kind: 'admitted' });
    expect(await admit(ref, a, [['X', 2]], { limits: [['X', 3]] })).toEqual({ kind: 'admitted-already' });
    const refused = await admit(ref, b, [['X', 2]], { limits: [['X', 3]] });
    expect(refused).toMatchObject({ kind: 'customer-limit', sku: 'X', limit: 3, held: 2, counted: [{ id: a, state: 'pending' }] });
    expect(await admit(ref, b, [['X', 1], ['Y', 9]], { limits: [['X', 3]] })).toEqual({ kind: 'admitted' });
    expect(Object.keys(await redis.hgetall(entriesKey(ref))).sort()).toEqual([a, b].sort());
  });

  it('counts live reservations against the active cap; a pending entry past its expiry is dead and removed', async () => {
    const ref = customer();
    const soon = Date.now() + 150;
    expect((await admit(ref, newId(), [['X', 1]], { activeMax: 2, expiresAtMs: soon })).kind).toBe('admitted');
    expect((await admit(ref, newId(), [['X', 1]], { activeMax: 2 })).kind).toBe('admitted');
    expect(await admit(ref, newId(), [['X', 1]], { activeMax: 2 })).toMatchObject({ kind: 'too-many-active', activeMax: 2, active: 2 });
    await sleep(200);
    expect((await admit(ref, newId(), [['X', 1]], { activeMax: 2 })).kind).toBe('admitted');
    expect(await redis.hlen(entriesKey(ref))).toBe(2);
  });

  it('pins a pending entry so it counts past its expiry; refuses to pin one whose expiry passed; leaves a reservation without an entry without one', async () => {
    const ref = customer();
    const [pinned, late] = [newId(), newId()];
    await admit(ref, pinned, [['X', 1]], { expiresAtMs: Date.now() + 200 });
    await admit(ref, late, [['X', 1]], { expiresAtMs: Date.now() + 100 });
    expect(await pinCustomer(scripts, keys, ref, pinned)).toBe('pinned');
    expect(await pinCustomer(scripts, keys, ref, pinned)).toBe('pinned');
    expect(await redis.pttl(entriesKey(ref))).toBe(-1);
    await sleep(250);
    expect(await pinCustomer(scripts, keys, ref, late)).toBe('expired');
    expect(await pinCustomer(scripts, keys, ref, newId())).toBe('no-entry');
    expect(await admit(ref, newId(), [['X', 1]], { limits: [['X', 1]] })).toMatchObject({ kind: 'customer-limit', held: 1, counted: [{ id: pinned, state: 'confirmed' }] });
  });

  it('forgets an entry only while it has the value given (or any with *), and the hash expires with its last pending entry once nothing is confirmed', async () => {
    const ref = customer();
    const [one, two] = [newId(), newId()];
    const expiresAtMs = Date.now() + 60_000;
    await admit(ref, one, [['X', 1]], { expiresAtMs });
    await admit(ref, two, [['X', 1]], { expiresAtMs: expiresAtMs + 5000 });
    const pendingValue = (await redis.hget(entriesKey(ref), one))!;
    expect(await pinCustomer(scripts, keys, ref, one)).toBe('pinned');
    expect(await forgetCustomer(scripts, keys, ref, [{ id: one, value: pendingValue }])).toBe(0);
    expect(await redis.hexists(entriesKey(ref), one)).toBe(1);
    expect(await forgetCustomer(scripts, keys, ref, [{ id: one, value: '*' }])).toBe(1);
    const expiresAt = await redis.pexpiretime(entriesKey(ref));
    expect(expiresAt).toBeGreaterThanOrEqual(expiresAtMs + 5000);
    expect(await forgetCustomer(scripts, keys, ref, [{ id: two, value: '*' }, { id: newId(), value: '*' }])).toBe(1);
    expect(await redis.exists(entriesKey(ref))).toBe(0);
  });

  it('checks a cart admitted already again beside the others, against the limits given now', async () => {
    const ref = customer();
    const [first, second] = [newId(), newId()];
    expect((await admit(ref, first, [['X', 2]], { limits: [['X', 5]] })).kind).toBe('admitted');
    expect((await admit(ref, second, [['X', 2]], { limits: [['X', 5]] })).kind).toBe('admitted');
    expect((await admit(ref, first, [['X', 2]], { limits: [['X', 5]] })).kind).toBe('admitted-already');
    // A resumed attempt after the limit was lowered to 3: 2 held by the other cart + 2 > 3.
    expect(await admit(ref, first, [['X', 2]], { limits: [['X', 3]] })).toMatchObject({ kind: 'customer-limit', held: 2, counted: [{ id: second }] });
  });

  it('readmits a cart whose entry is gone only when it fits, and ensure writes a confirmed entry whatever is there', async () => {
    const ref = customer();
    const [gone, other] = [newId(), newId()];
    const call = (id: string) => ({ reservationId: id, expiresAtMs: Date.now() + hourMs, activeMax: 0, lines: [{ sku: 'X', quantity: 1 }], limits: new Map([['X', 1]]) });
    expect(await readmitCustomer(scripts, keys, ref, call(gone))).toEqual({ kind: 'admitted' });
    expect(await redis.hget(entriesKey(ref), gone)).toMatch(/^f\|/);
    await redis.hdel(entriesKey(ref), gone);
    expect((await admit(ref, other, [['X', 1]], { limits: [['X', 1]] })).kind).toBe('admitted');
    expect(await readmitCustomer(scripts, keys, ref, call(gone))).toMatchObject({ kind: 'customer-limit', sku: 'X', limit: 1, held: 1 });
    expect(await redis.hexists(entriesKey(ref), gone)).toBe(0);
    await ensureCustomer(scripts, keys, ref, gone, Date.now() - 1000, [{ sku: 'X', quantity: 1 }]);
    expect(await redis.hget(entriesKey(ref), gone)).toMatch(/^f\|/);
    expect(await redis.pttl(entriesKey(ref))).toBe(-1);
  });

  it('refuses a malformed entry and arguments without writing', async () => {
    const ref = customer();
    await redis.hset(entriesKey(ref), 'bad', 'q|1|X:1');
    await expect(admit(ref, newId(), [['X', 1]])).rejects.toThrow(/ASSERT malformed customer entry/);
    await expect(scripts.run('admitCustomer', [entriesKey(ref)], [newId(), Date.now(), 0])).rejects.toThrow(/ASSERT ARGV/);
    await expect(admit(ref, newId(), [['X', 1]], { limits: [['X', 0]] })).rejects.toThrow(/ASSERT a per-customer limit must be >= 1/);
    expect(await redis.hlen(entriesKey(ref))).toBe(1);
    // A dead entry is not removed by a call that fails on its arguments.
    const other = customer();
    await admit(other, newId(), [['X', 1]], { expiresAtMs: Date.now() + 50 });
    await sleep(80);
    await expect(admit(other, newId(), [['X', 1]], { limits: [['X', 0]] })).rejects.toThrow(/ASSERT a per-customer limit must be >= 1/);
    expect(await redis.hlen(entriesKey(other))).toBe(1);
    await expect(scripts.run('admitCustomer', [entriesKey(other)], [newId(), Date.now() + hourMs, 0, ''])).rejects.toThrow(/ASSERT admission needs the lines/);
    await expect(scripts.run('admitCustomer', [entriesKey(other)], [newId(), Date.now() + hourMs, 0, 'X:1,Y'])).rejects.toThrow(/ASSERT admission needs the lines/);
    await expect(admit(other, newId(), [['X', 1]], { limits: [['Y', 2]] })).rejects.toThrow(/ASSERT limited SKU Y is not a line of the cart/);
    await expect(forgetCustomer(scripts, keys, ref, [{ id: 'bad', value: '*' }])).rejects.toThrow(/ASSERT malformed customer entry/);
    expect(await redis.hlen(entriesKey(other))).toBe(1);
    expect(await redis.hget(entriesKey(ref), 'bad')).toBe('q|1|X:1');
  });
});

describe('holdLines: the guards\' part in a SKU\'s slot', () => {
  it('refuses a cart without a customer on a limited SKU, and one whose customer step counted another limit, holding nothing', async () => {
    const limited = await seedSku(10);
    const free = await seedSku(10);
    await redis.hset(keys.skuState(limited), 'pcl', 3);
    const call = (guard: HoldGuard, lines = [{ sku: free, quantity: 1 }, { sku: limited, quantity: 1 }]) =>
      holdLines(scripts, keys, { reservationId: newId(), expiresAtMs: Date.now() + hourMs, reclaimPerSkuMax: 10, lines, guard });
    expect(await call({ customer: false })).toMatchObject({ kind: 'customer-required', sku: limited });
    expect(await call({ customer: true, limits: new Map([[limited, 5]]) })).toMatchObject({ kind: 'limit-changed', sku: limited, limit: 3 });
    expect(await call({ customer: true, limits: new Map() })).toMatchObject({ kind: 'limit-changed', sku: limited, limit: 3 });
    expect(await call({ customer: true, limits: new Map<string, number | null>([[free, 2], [limited, 3]]) })).toMatchObject({ kind: 'limit-changed', sku: free, limit: null });
    expect(await redis.hget(keys.skuState(limited), 'reserved')).toBe('0');
    expect(await redis.zcard(keys.skuHolds(free))).toBe(0);
    expect(await call({ customer: true, limits: new Map([[limited, 3]]) })).toMatchObject({ kind: 'held' });
    expect(await call({ customer: false }, [{ sku: free, quantity: 1 }])).toMatchObject({ kind: 'held' });
  });
});

describe('leaseRun', () => {
  const lease = async (key: string, op: string, holder: string, ms = 60_000) => (await scripts.run('leaseRun', [key], [op, holder, ms]))[0];

  it('lets one holder at a time have it; only that holder renews or releases it', async () => {
    const key = `${prefix}lease:${newId()}`;
    expect(await lease(key, 'acquire', 'A')).toBe(1);
    expect(await lease(key, 'acquire', 'B')).toBe(0);
    expect(await lease(key, 'renew', 'B')).toBe(0);
    expect(await lease(key, 'release', 'B')).toBe(0);
    expect(await redis.get(key)).toBe('A');
    await redis.pexpire(key, 1000);
    expect(await lease(key, 'renew', 'A', 50_000)).toBe(1);
    expect(await redis.pttl(key)).toBeGreaterThan(40_000);
    expect(await lease(key, 'release', 'A')).toBe(1);
    expect(await redis.exists(key)).toBe(0);
    expect(await lease(key, 'release', 'A')).toBe(0);
    expect(await lease(key, 'acquire', 'B')).toBe(1);
  });

  it('answers an acquire sent again by the holder that has it (its first reply lost) with 1, renewing it', async () => {
    const key = `${prefix}lease:${newId()}`;
    expect(await lease(key, 'acquire', 'A', 1000)).toBe(1);
    expect(await lease(key, 'acquire', 'A', 50_000)).toBe(1);
    expect(await redis.get(key)).toBe('A');
    expect(await redis.pttl(key)).toBeGreaterThan(40_000);
  });

  it('ends by itself after its length when nobody releases it', async () => {
    const key = `${prefix}lease:${newId()}`;
    expect(await lease(key, 'acquire', 'A', 50)).toBe(1);
    await sleep(120);
    expect(await lease(key, 'acquire', 'B')).toBe(1);
  });
});
