// Differential test of the batched hot path (lua/createReservation-n.lua): random reservations are
// run twice on two identical copies of a random Redis state, once as one batch and once each in
// a call of its own, and every reply (reclaim reports included) and every SKU's counters, audit
// bookkeeping and holds must come out the same. The states mix expired and live holds, reclaim
// limits of 1, 2 and 100, an audit in progress, a pending debit, missing SKU states, stripe SKUs,
// per-customer limits and active caps, repeated idempotency keys with equal and other
// fingerprints, earlier replays, duplicate lines and a client id the script refuses. Seeded: a
// failure prints its trial, and SEED=… TRIALS=… replays or widens it. (Written first by an
// adversarial review of the batch; one Redis only.)
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { deleteKeysWithPrefix } from '../lib/redis/delete-keys';
import { redisKeys } from '../lib/redis/keys';
import { reservationIdAt } from '../lib/random-ids';
import { ScriptRunner, type ScriptReply } from '../lib/redis/scripts';
import { testRedisUrl } from './support/harness';
import { readRecord } from './support/records';

const redis = new Redis(testRedisUrl);
const scripts = new ScriptRunner(redis);
const root = `t:diff:${randomBytes(3).toString('hex')}:`;
afterAll(async () => {
  await deleteKeysWithPrefix(redis, root);
  redis.disconnect();
});

const trialsDefault = 1000;
const trials = Number(process.env.TRIALS ?? trialsDefault);
let seed = Number(process.env.SEED ?? 12345);
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
const below = (n: number) => Math.floor(random() * n);
const pick = <T>(values: readonly T[]) => values[below(values.length)]!;
const hourMs = 3_600_000;

interface Spec { id: string; key: string; fingerprint: string; client: string; customer: string; lines: Array<[string, number]>; reclaim: number; activeMax: number }
interface SkuPlan { missing: boolean; holds: Array<[string, number]>; reserved: number; onHand: number; debit: number; pcl?: number; auditAt?: number | string }

function pack(prefix: string, spec: Spec) {
  const k = redisKeys(prefix);
  const keys = [k.idempotency(spec.client, spec.key), k.reservation(spec.id)];
  const args: Array<string | number> = [spec.fingerprint, spec.id, spec.client, spec.customer, hourMs, hourMs, hourMs, spec.reclaim];
  for (const [sku, quantity] of spec.lines) {
    keys.push(k.skuState(sku), k.skuHolds(sku));
    args.push(sku, quantity);
  }
  keys.push(k.customer(spec.client, spec.customer));
  args.push(spec.activeMax);
  return { keys, args };
}

async function run(prefix: string, specs: readonly Spec[]): Promise<ScriptReply[]> {
  const items = specs.map((spec) => pack(prefix, spec));
  const reply = await scripts.run('createReservation', items.flatMap((item) => item.keys), [items.length, ...items.map((item) => item.keys.length), ...items.flatMap((item) => item.args)]);
  return reply as unknown as ScriptReply[];
}

async function seedState(prefix: string, plans: ReadonlyMap<string, SkuPlan>, replayed: boolean): Promise<void> {
  const k = redisKeys(prefix);
  for (const [sku, plan] of plans) {
    if (plan.missing) continue;
    const fields: Array<string | number> = ['onHand', plan.onHand, 'reserved', plan.reserved, 'pos', 1, 'debit', plan.debit];
    if (plan.pcl !== undefined) fields.push('pcl', plan.pcl);
    if (plan.auditAt !== undefined) fields.push('as', plan.auditAt, 'ap', 0, 'ai', 'audit');
    await redis.hset(k.skuState(sku), ...fields);
    for (const [member, score] of plan.holds) await redis.zadd(k.skuHolds(sku), score, member);
  }
  if (replayed) await redis.set(k.idempotency('cl', 'k1'), 'd|fpA|prevId|1000|2000', 'PX', hourMs);
}

/** Counters, audit bookkeeping and holds of each SKU; a hold made here shows as "new" (its score is the call's clock). */
async function snapshot(prefix: string, skus: readonly string[]) {
  const k = redisKeys(prefix);
  const state: Record<string, unknown> = {};
  for (const sku of skus) {
    const counters = await redis.hmget(k.skuState(sku), 'reserved', 'ap', 'as');
    const holds = await redis.zrange(k.skuHolds(sku), 0, -1, 'WITHSCORES');
    const members: string[] = [];
    for (let index = 0; index < holds.length; index += 2) members.push(`${holds[index]}@${Number(holds[index + 1]) < 1e9 ? holds[index + 1] : 'new'}`);
    state[sku] = { counters, holds: members.sort() };
  }
  return state;
}

/** A reply without its times (two calls have two clocks); the reclaim report without its time. */
function normalise(reply: ScriptReply): unknown[] {
  const parts = [...reply] as unknown[];
  const last = parts[parts.length - 1];
  let report: unknown = null;
  if (Array.isArray(last)) {
    parts.pop();
    report = last.slice(1);
  }
  if (parts[0] === 1) return [1, report];
  if (parts[0] === 2) return [2, parts[1], report];
  if (parts[0] === -1) {
    const short: unknown[] = [-1];
    for (let index = 1; index < parts.length; index += 4) short.push(parts[index], parts[index + 1], parts[index + 2], Number(parts[index + 3]) === -1 ? -1 : 'later');
    return [...short, report];
  }
  if (parts[0] === -100) return [-100, String(parts[1]).replace(/user_function:\d+/, ''), report];
  return [...parts, report];
}

/** Every record a batch wrote is kept at least until its drop time, and the customer index names only records that exist. */
async function checkRecords(prefix: string, specs: readonly Spec[]): Promise<void> {
  const k = redisKeys(prefix);
  for (const spec of specs) {
    const bucket = k.reservation(spec.id);
    if ((await readRecord(redis, k, spec.id)) === undefined) continue;
    const done = await redis.get(k.idempotency(spec.client, spec.key));
    const expiresAt = Number(done!.split('|')[4]);
    expect(await redis.pexpiretime(bucket)).toBeGreaterThanOrEqual(expiresAt + hourMs);
  }
  for (const customer of ['u1', 'u2']) {
    for (const member of await redis.zrange(k.customer('cl', customer), 0, -1)) {
      const [bucket, id] = member.split('#');
      expect(bucket, `index member ${member}`).toBe(k.reservation(id!));
      expect(await readRecord(redis, k, id!), `index member ${member}`).toBeDefined();
    }
  }
}

describe('a batch answers and writes exactly what its reservations would have, each in a call of its own', () => {
  it(`${trials} random batches`, async () => {
    const outcomes = new Map<string, number>();
    for (let trial = 0; trial < trials; trial += 1) {
      const skus = ['X~0', 'X~1', 'Y'].slice(0, 1 + below(3));
      const plans = new Map<string, SkuPlan>();
      for (const sku of skus) {
        const holds: Array<[string, number]> = [];
        let reserved = 0;
        for (let index = below(5); index > 0; index -= 1) {
          const quantity = 1 + below(2);
          holds.push([`old${index}x:${quantity}`, 1000 + below(3)]);
          reserved += quantity;
        }
        for (let index = below(3); index > 0; index -= 1) {
          const quantity = 1 + below(2);
          holds.push([`live${index}x:${quantity}`, 9e12 + index]);
          reserved += quantity;
        }
        plans.set(sku, {
          missing: random() < 0.08, holds, reserved, onHand: reserved + below(5), debit: below(2),
          ...(random() < 0.3 ? { pcl: 1 + below(3) } : {}),
          ...(random() < 0.4 ? { auditAt: pick([1000, 1001, 1002, 9e12, 'inf']) } : {}),
        });
      }
      const replayed = random() < 0.5;
      const specs: Spec[] = [];
      for (let count = 1 + below(8); count > 0; count -= 1) {
        const lines: Array<[string, number]> = [[pick(skus), 1 + below(3)]];
        if (random() < 0.4) lines.push([pick(skus), 1 + below(3)]);
        specs.push({
          id: reservationIdAt(Date.now()), key: pick(['k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8']), fingerprint: pick(['fpA', 'fpA', 'fpB']),
          client: random() < 0.05 ? 'c|l' : 'cl', customer: pick(['', 'u1', 'u2']), lines, reclaim: pick([1, 2, 100]), activeMax: pick([0, 0, 1, 2]),
        });
      }
      const batched = `${root}${trial}:batch:`;
      const alone = `${root}${trial}:alone:`;
      await seedState(batched, plans, replayed);
      await seedState(alone, plans, replayed);
      const batchReplies = (await run(batched, specs)).map(normalise);
      const aloneReplies: unknown[] = [];
      for (const spec of specs) aloneReplies.push(normalise((await run(alone, [spec]))[0]!));
      const context = JSON.stringify({ seed: process.env.SEED ?? 12345, trial, plans: [...plans], replayed, specs });
      expect(batchReplies, context).toEqual(aloneReplies);
      expect(await snapshot(batched, skus), context).toEqual(await snapshot(alone, skus));
      await checkRecords(batched, specs);
      for (const reply of batchReplies) {
        const outcome = `${String(reply[0])}${reply[reply.length - 1] === null ? '' : '+reclaim'}`;
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
      await deleteKeysWithPrefix(redis, `${root}${trial}:`);
    }
    // The generator reaches every outcome, so agreement means something.
    for (const outcome of ['1', '1+reclaim', '2', '-1', '-2', '-3', '-5', '-6', '-7', '-100']) expect(outcomes.get(outcome) ?? 0, `outcome ${outcome}`).toBeGreaterThan(0);
  }, 120_000);
});
