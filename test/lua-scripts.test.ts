// Proves each Lua script's contract directly against the real Redis: every return code, and the
// state of the keys afterwards (not only the replies). Runs in its own key prefix in the test db.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { deleteKeysWithPrefix } from '../lib/redis/delete-keys';
import { redisKeys } from '../lib/redis/keys';
import { loadScripts, ScriptRunner } from '../lib/redis/scripts';
import { testRedisUrl, uniqueName } from './support/harness';

const prefix = `t:lua:${randomBytes(4).toString('hex')}:`;
const keys = redisKeys(prefix);
const redis = new Redis(testRedisUrl);
const scripts = new ScriptRunner(redis);
const hourMs = 3_600_000;

afterAll(async () => {
  await deleteKeysWithPrefix(redis, prefix);
  redis.disconnect();
});

async function seedSku(onHand: number, reserved = 0, version = 1): Promise<string> {
  const sku = uniqueName('L');
  await redis.hset(keys.skuState(sku), 'onHand', onHand, 'reserved', reserved, 'version', version);
  return sku;
}

interface ReserveCall {
  lines: Array<[string, number]>;
  key?: string;
  fingerprint?: string;
  id?: string;
  ttlMs?: number;
  customer?: string;
}

function reserve(call: ReserveCall) {
  const id = call.id ?? randomBytes(16).toString('base64url');
  const idemKey = keys.idempotency('client-1', call.key ?? randomBytes(6).toString('hex'));
  const keyList = [idemKey, keys.reservation(id)];
  const args: Array<string | number> = [call.fingerprint ?? 'fp-1', id, 'client-1', call.customer ?? '', call.ttlMs ?? hourMs, hourMs, hourMs, 100];
  for (const [sku, quantity] of call.lines) {
    keyList.push(keys.skuState(sku), keys.skuHolds(sku));
    args.push(sku, quantity);
  }
  return { id, idemKey, reply: scripts.run('createReservation', keyList, args) };
}

async function skuState(sku: string) {
  const [onHand, reserved, version] = await redis.hmget(keys.skuState(sku), 'onHand', 'reserved', 'version');
  return { onHand: Number(onHand), reserved: Number(reserved), version: Number(version) };
}

describe('loader', () => {
  it('resolves includes once and names every script with its key count', () => {
    const loaded = loadScripts();
    const create = loaded.get('createReservation');
    expect(create?.numberOfKeys).toBeUndefined();
    expect(loaded.get('readSku')?.numberOfKeys).toBe(2);
    expect(create?.body).toContain('local function reclaimExpiredHolds');
    expect(create?.body.match(/local function fail/g)).toHaveLength(1);
    expect(create?.body).not.toContain('@include');
  });

  it('re-sends the body when Redis has lost its script cache (NOSCRIPT)', async () => {
    await redis.script('FLUSH');
    const sku = await seedSku(3);
    const reply = await scripts.run('readSku', [keys.skuState(sku), keys.skuHolds(sku)], [10]);
    expect(reply).toEqual([1, 3, 0, 1]);
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
    expect(await skuState(a)).toMatchObject({ onHand: 10, reserved: 3 });
    expect(await skuState(b)).toMatchObject({ onHand: 5, reserved: 5 });
    expect(await redis.zscore(keys.skuHolds(a), `${call.id}:3`)).toBe(String(expiresAt));
    expect(await redis.hgetall(keys.reservation(call.id))).toEqual({
      s: 'pending', c: 'client-1', u: 'cust-9', ca: String(createdAt), ex: String(expiresAt), l: `${a}:3,${b}:5`,
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
    expect(await redis.exists(keys.reservation(second.id))).toBe(0);
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

  it('reports SKUs missing from Redis (-3) and holds nothing', async () => {
    const known = await seedSku(5);
    const call = reserve({ lines: [[known, 1], ['NOPE-1', 1], ['NOPE-2', 1]] });
    expect(await call.reply).toEqual([-3, 'NOPE-1', 'NOPE-2']);
    expect(await skuState(known)).toMatchObject({ reserved: 0 });
  });

  it('reclaims expired holds on the SKUs it touches before checking', async () => {
    const sku = await seedSku(2);
    const old = reserve({ lines: [[sku, 2]], ttlMs: 1 });
    await old.reply;
    await new Promise((resolve) => setTimeout(resolve, 5));
    const fresh = reserve({ lines: [[sku, 2]] });
    expect((await fresh.reply)[0]).toBe(1);
    expect(await skuState(sku)).toMatchObject({ onHand: 2, reserved: 2 });
    expect(await redis.zrange(keys.skuHolds(sku), 0, -1)).toEqual([`${fresh.id}:2`]);
  });

  it('crashes on a duplicate SKU line, a programmer error', async () => {
    const sku = await seedSku(5);
    await expect(reserve({ lines: [[sku, 1], [sku, 1]] }).reply).rejects.toThrow(/ASSERT duplicate line/);
  });
});

describe('releaseReservation', () => {
  function release(id: string, lines: Array<[string, number]>) {
    const keyList = [keys.reservation(id)];
    for (const [sku] of lines) keyList.push(keys.skuState(sku), keys.skuHolds(sku));
    return scripts.run('releaseReservation', keyList, [id]);
  }

  it('returns units, marks it released, and answers the same again', async () => {
    const sku = await seedSku(5);
    const call = reserve({ lines: [[sku, 3]] });
    await call.reply;
    expect(await release(call.id, [[sku, 3]])).toEqual([1, 'released']);
    expect(await skuState(sku)).toMatchObject({ reserved: 0 });
    expect(await redis.zcard(keys.skuHolds(sku))).toBe(0);
    expect(await redis.hget(keys.reservation(call.id), 's')).toBe('released');
    expect(await release(call.id, [[sku, 3]])).toEqual([2, 'released']);
    expect(await skuState(sku)).toMatchObject({ reserved: 0 });
  });

  it('marks an expired hold expired and returns its units if still held', async () => {
    const sku = await seedSku(5);
    const call = reserve({ lines: [[sku, 4]], ttlMs: 1 });
    await call.reply;
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await release(call.id, [[sku, 4]])).toEqual([1, 'expired']);
    expect(await skuState(sku)).toMatchObject({ reserved: 0 });
  });

  it('does not return units twice when a reserve already reclaimed the expired hold', async () => {
    const sku = await seedSku(5);
    const expired = reserve({ lines: [[sku, 4]], ttlMs: 1 });
    await expired.reply;
    await new Promise((resolve) => setTimeout(resolve, 5));
    await reserve({ lines: [[sku, 1]] }).reply;
    expect(await skuState(sku)).toMatchObject({ reserved: 1 });
    expect(await release(expired.id, [[sku, 4]])).toEqual([1, 'expired']);
    expect(await skuState(sku)).toMatchObject({ reserved: 1 });
  });

  it('refuses a reservation past pending (-2) and an unknown one (-1)', async () => {
    const sku = await seedSku(5);
    const call = reserve({ lines: [[sku, 1]] });
    await call.reply;
    await redis.hset(keys.reservation(call.id), 's', 'confirmed');
    expect(await release(call.id, [[sku, 1]])).toEqual([-2, 'confirmed']);
    expect(await skuState(sku)).toMatchObject({ reserved: 1 });
    expect(await release('x'.repeat(22), [])).toEqual([-1]);
  });
});

describe('readSku, initSku', () => {
  it('reads counters after reclaiming expired holds, and -1 for a missing SKU', async () => {
    const sku = await seedSku(5);
    await reserve({ lines: [[sku, 2]], ttlMs: 1 }).reply;
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await scripts.run('readSku', [keys.skuState(sku), keys.skuHolds(sku)], [100])).toEqual([1, 5, 0, 1]);
    expect(await scripts.run('readSku', [keys.skuState('NOPE'), keys.skuHolds('NOPE')], [100])).toEqual([-1]);
  });

  it('creates state once and never overwrites it', async () => {
    const sku = uniqueName('L');
    expect(await scripts.run('initSku', [keys.skuState(sku), keys.skuHolds(sku)], [7, 3, 41])).toEqual([1]);
    expect(await scripts.run('initSku', [keys.skuState(sku), keys.skuHolds(sku)], [99, 9, 50])).toEqual([0]);
    expect(await skuState(sku)).toEqual({ onHand: 7, reserved: 0, version: 3 });
    expect(await redis.hmget(keys.skuState(sku), 'ov', 'ls')).toEqual(['0', '41']);
  });

  it('refuses to rebuild a SKU whose holds survived without its state', async () => {
    const sku = uniqueName('L');
    await redis.zadd(keys.skuHolds(sku), Date.now() + hourMs, 'someone:1');
    expect(await scripts.run('initSku', [keys.skuState(sku), keys.skuHolds(sku)], [7, 3, 1])).toEqual([-1]);
    expect(await redis.exists(keys.skuState(sku))).toBe(0);
  });
});

describe('stageStockChange, applyOnHandDelta', () => {
  const stage = (sku: string, delta: number, ledgerOnHand: number, version: number) =>
    scripts.run('stageStockChange', [keys.skuState(sku), keys.skuHolds(sku), keys.skuUnknown(sku)], [delta, ledgerOnHand, version, version + 1, 100, 77]);
  const apply = (sku: string, units: number, from: number, to: number) => scripts.run('applyOnHandDelta', [keys.skuState(sku)], [units, from, to]);

  it('applies a decrease at once and moves the version', async () => {
    const sku = await seedSku(10, 3, 4);
    expect(await stage(sku, -5, 10, 4)).toEqual([1, 10, 3, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 5, reserved: 3, version: 5 });
  });

  it('refuses a decrease below what is reserved (-1) and changes nothing', async () => {
    const sku = await seedSku(10, 8, 4);
    expect(await stage(sku, -3, 10, 4)).toEqual([-1, 10, 8]);
    expect(await skuState(sku)).toEqual({ onHand: 10, reserved: 8, version: 4 });
  });

  it('only checks an increase; applyOnHandDelta adds it after the commit, fenced by version', async () => {
    const sku = await seedSku(10, 0, 4);
    expect(await stage(sku, 5, 10, 4)).toEqual([1, 10, 0, 0]);
    expect(await skuState(sku)).toEqual({ onHand: 10, reserved: 0, version: 4 });
    expect(await apply(sku, 5, 4, 5)).toEqual([1, 15, 0]);
    expect(await apply(sku, 5, 4, 5)).toEqual([0]);
    expect(await skuState(sku)).toEqual({ onHand: 15, reserved: 0, version: 5 });
  });

  it('resynchronises on-hand from the ledger when the versions differ, keeping reserved', async () => {
    const sku = await seedSku(99, 2, 3);
    expect(await stage(sku, 1, 20, 4)).toEqual([1, 20, 2, 1]);
    expect(await skuState(sku)).toEqual({ onHand: 20, reserved: 2, version: 4 });
    expect(await redis.hmget(keys.skuState(sku), 'ov', 'ls')).toEqual(['1', '77']);
  });

  it('creates a missing SKU from the ledger values', async () => {
    const sku = uniqueName('L');
    expect(await stage(sku, -2, 6, 2)).toEqual([1, 6, 0, 1]);
    expect(await skuState(sku)).toEqual({ onHand: 4, reserved: 0, version: 3 });
  });

  it('refuses to add zero or negative units', async () => {
    const sku = await seedSku(1);
    await expect(apply(sku, 0, 1, 2)).rejects.toThrow(/ASSERT units must be >= 1/);
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


describe('confirmReservation, commitReservation', () => {
  const lineKeys = (id: string, lines: Array<[string, number]>) => [keys.reservation(id), ...lines.flatMap(([sku]) => [keys.skuState(sku), keys.skuHolds(sku)])];
  const confirm = (id: string, lines: Array<[string, number]>) => scripts.run('confirmReservation', lineKeys(id, lines), [id]);
  const commit = (id: string, lines: Array<[string, number]>, fence: number, entryId = 100) =>
    scripts.run('commitReservation', lineKeys(id, lines), [id, fence, hourMs, ...lines.flatMap(([, quantity]) => [quantity, entryId])]);

  it('confirms: holds stop expiring (+inf), the record persists, the fence goes to 2', async () => {
    const sku = await seedSku(5);
    const call = reserve({ lines: [[sku, 2]], ttlMs: 50 });
    await call.reply;
    const reply = await confirm(call.id, [[sku, 2]]);
    expect(reply.slice(0, 2)).toEqual([1, 2]);
    expect(await redis.zscore(keys.skuHolds(sku), `${call.id}:2`)).toBe('inf');
    expect(await redis.pttl(keys.reservation(call.id))).toBe(-1);
    expect(await redis.hmget(keys.reservation(call.id), 's', 'v')).toEqual(['confirmed', '2']);
    await new Promise((resolve) => setTimeout(resolve, 60));
    // Past the original expiry, a reserve reclaims nothing of it.
    expect((await reserve({ lines: [[sku, 4]] }).reply)[0]).toBe(-1);
    expect(await confirm(call.id, [[sku, 2]])).toEqual([2, 'confirmed', 2]);
  });

  it('refuses released (-2), expires an expired one (-3, units back), and unknown (-1)', async () => {
    const sku = await seedSku(5);
    const expired = reserve({ lines: [[sku, 3]], ttlMs: 1 });
    await expired.reply;
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await confirm(expired.id, [[sku, 3]])).toEqual([-3]);
    expect(await redis.hget(keys.reservation(expired.id), 's')).toBe('expired');
    expect(await skuState(sku)).toMatchObject({ reserved: 0 });
    expect(await confirm(expired.id, [[sku, 3]])).toEqual([-3]);
    const released = reserve({ lines: [[sku, 1]] });
    await released.reply;
    await redis.hset(keys.reservation(released.id), 's', 'released');
    expect(await confirm(released.id, [[sku, 1]])).toEqual([-2]);
    expect(await confirm('y'.repeat(22), [])).toEqual([-1]);
  });

  it('commits at the right fence only: reserved and on-hand drop together, once', async () => {
    const a = await seedSku(10);
    const b = await seedSku(4);
    const call = reserve({ lines: [[a, 3], [b, 4]] });
    await call.reply;
    expect(await commit(call.id, [[a, 3], [b, 4]], 2)).toEqual([0, 'pending']);
    await confirm(call.id, [[a, 3], [b, 4]]);
    expect(await commit(call.id, [[a, 3], [b, 4]], 1)).toEqual([0, 'confirmed']);
    expect(await commit(call.id, [[a, 3], [b, 4]], 2)).toEqual([1]);
    expect(await skuState(a)).toMatchObject({ onHand: 7, reserved: 0 });
    expect(await skuState(b)).toMatchObject({ onHand: 0, reserved: 0 });
    expect(await redis.zcard(keys.skuHolds(a))).toBe(0);
    expect(await redis.hget(keys.reservation(call.id), 's')).toBe('committed');
    expect(await redis.pttl(keys.reservation(call.id))).toBeGreaterThan(hourMs - 5000);
    expect(await commit(call.id, [[a, 3], [b, 4]], 2)).toEqual([0, 'committed']);
    expect(await skuState(a)).toMatchObject({ onHand: 7, reserved: 0 });
  });

  it('when Redis lost the reservation, lowers on-hand only of states rebuilt before the entry', async () => {
    const sku = await seedSku(10);
    await redis.hset(keys.skuState(sku), 'ls', 5, 'ov', 0);
    const lost = 'z'.repeat(22);
    // Entry 5 is already in the rebuilt on-hand; entry 6 came after the rebuild.
    expect(await commit(lost, [[sku, 2]], 2, 5)).toEqual([0, 'missing', 0]);
    expect(await skuState(sku)).toMatchObject({ onHand: 10, reserved: 0 });
    expect(await commit(lost, [[sku, 2]], 2, 6)).toEqual([0, 'missing', 1]);
    expect(await skuState(sku)).toMatchObject({ onHand: 8, reserved: 0 });
    // A state that was never rebuilt (no ls) is never touched by this path.
    const plain = await seedSku(10);
    expect(await commit(lost, [[plain, 2]], 2, 6)).toEqual([0, 'missing', 0]);
    expect(await skuState(plain)).toMatchObject({ onHand: 10 });
  });
});

describe('requestCancel, applyCancel', () => {
  const committedRecord = async (sku: string, quantity: number) => {
    const call = reserve({ lines: [[sku, quantity]] });
    await call.reply;
    const lineKeys = [keys.reservation(call.id), keys.skuState(sku), keys.skuHolds(sku)];
    await scripts.run('confirmReservation', lineKeys, [call.id]);
    await scripts.run('commitReservation', lineKeys, [call.id, 2, hourMs, quantity, 100]);
    return call.id;
  };
  const request = (id: string, recreate: Array<string | number> = [2, 'client-1', '', 1, 2, 'X:1', hourMs]) =>
    scripts.run('requestCancel', [keys.reservation(id)], recreate);
  const apply = (id: string, sku: string, fence: number) => scripts.run('applyCancel', [keys.reservation(id), keys.skuState(sku)], [fence, hourMs, 4, 200]);

  it('bumps the fence once, applies once at that fence, then answers cancelled', async () => {
    const sku = await seedSku(10);
    const id = await committedRecord(sku, 4);
    expect(await skuState(sku)).toMatchObject({ onHand: 6 });
    expect(await request(id)).toEqual([1, 3]);
    expect(await request(id)).toEqual([1, 3]);
    expect(await apply(id, sku, 2)).toEqual([0, 'committed']);
    expect(await apply(id, sku, 3)).toEqual([1]);
    expect(await skuState(sku)).toMatchObject({ onHand: 10, reserved: 0 });
    expect(await apply(id, sku, 3)).toEqual([0, 'cancelled']);
    expect(await request(id)).toEqual([2, 3]);
    expect(await skuState(sku)).toMatchObject({ onHand: 10 });
  });

  it('recreates a forgotten record from the ledger copy, and refuses one not committed', async () => {
    const sku = await seedSku(10);
    const id = randomBytes(16).toString('base64url');
    expect(await request(id, [2, 'client-9', 'cust', 1000, 2000, `${sku}:2`, hourMs])).toEqual([1, 3]);
    expect(await redis.hgetall(keys.reservation(id))).toMatchObject({ s: 'committed', c: 'client-9', u: 'cust', l: `${sku}:2`, v: '3', cx: '1' });
    const pending = reserve({ lines: [[sku, 1]] });
    await pending.reply;
    expect(await request(pending.id)).toEqual([-1, 'pending']);
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

describe('inspectSku, correctOnHand', () => {
  it('inspects counters and confirmed holds, and corrects on-hand only if nothing changed it', async () => {
    const sku = await seedSku(10);
    await redis.hset(keys.skuState(sku), 'ov', 4);
    const call = reserve({ lines: [[sku, 2]] });
    await call.reply;
    await scripts.run('confirmReservation', [keys.reservation(call.id), keys.skuState(sku), keys.skuHolds(sku)], [call.id]);
    const inspected = await scripts.run('inspectSku', [keys.skuState(sku), keys.skuHolds(sku)], [100, 100, '0']);
    expect(inspected).toEqual([1, 10, 2, 1, 4, 0, 0, 1, 0, `${call.id}:2`]);
    expect(await scripts.run('correctOnHand', [keys.skuState(sku)], [3, 1, 8, 2, 99])).toEqual([0]);
    expect(await scripts.run('correctOnHand', [keys.skuState(sku)], [4, 1, 8, 2, 99])).toEqual([1, 10]);
    expect(await redis.hmget(keys.skuState(sku), 'onHand', 'version', 'ov', 'ls')).toEqual(['8', '2', '5', '99']);
  });
});
