// `npm run bench:cluster`: what a cart costs on a real Redis Cluster (three primaries, three
// replicas, started here on loopback) next to a single Redis (started here too), in two parts.
// 1. Script level: today's one-script cart on the single Redis, and on the cluster a cart's
//    per-slot step (`holdLines`) for a one-slot cart and for a two-slot cart (one step per slot,
//    in slot order): carts/s from this process (64 in flight) and the Redis CPU per cart, from
//    every primary's `INFO commandstats` (usec of FCALL: the scripts run as Redis Functions).
// 2. Whole reservations over HTTP: the API as shipped (one process) on the single Redis and on the
//    cluster (REDIS_CLUSTER_NODES), POST /v1/reservations driven by autocannon, one-line carts and
//    two-slot carts; req/s, p50/p99 and the Redis CPU per reservation (each primary's process CPU, INFO cpu, every
//    primary), which states what one Redis core can take beyond what two cores here can drive.
// 3. One hot SKU with 1 stripe and with 3 stripes on the cluster, through the API (its SKUs made
//    with PUT …/stock in a database of the bench's own, dropped at the end): req/s and each
//    primary's Redis CPU per reservation. The busiest primary bounds what one SKU can take: with
//    1 stripe every hold lands on one primary; with 3 they spread.
// Alternating rounds; medians and ratios from the same run.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import autocannon from 'autocannon';
import { Cluster, type Redis } from 'ioredis';
import { PrivateRedis, PrivateRedisCluster } from '../chaos/servers';
import { dropDatabase } from '../lib/postgres/connection';
import { prepareDatabaseAt } from '../lib/postgres/migrations';
import { createClusterClient, createRedis, type RedisClient } from '../lib/redis/connection';
import { redisKeys } from '../lib/redis/keys';
import { ScriptRunner } from '../lib/redis/scripts';
import { slotOf } from '../lib/redis/slots';
import { holdLines, slotGroups } from '../lib/scripts/cart-lines';
import { ReservationScript } from '../lib/scripts/create-reservation';
import { prepareStockChange } from '../lib/scripts/prepare-stock-change';

const flags = new Map<string, string>();
for (let index = 2; index < process.argv.length; index += 2) flags.set(String(process.argv[index]).replace(/^--/, ''), String(process.argv[index + 1]));
const durationMs = Number(flags.get('duration') ?? 5) * 1000;
const rounds = Number(flags.get('rounds') ?? 3);
const inFlight = 64;
/** HTTP connections autocannon keeps open to the API. */
const connections = 64;
const secret = 'bench-checkout-secret';
if (!(durationMs >= 1000 && durationMs <= 120_000 && rounds >= 1 && rounds <= 10)) throw new Error('--duration 1-120 (s), --rounds 1-10');

const keyPrefix = `bench:${randomBytes(3).toString('hex')}:`;
const keys = redisKeys(keyPrefix);
const stockUnits = 1_000_000_000;
const holdTtlMs = 900_000;

interface Target {
  readonly name: string;
  readonly client: RedisClient;
  readonly scripts: ScriptRunner;
  /** One cart; resolves when it is held. */
  readonly cart: (index: number) => Promise<void>;
}

function primaries(client: RedisClient): Redis[] {
  return client instanceof Cluster ? client.nodes('master') : [client];
}

/** usec the scripts took on every primary since the last reset (FCALL; EVALSHA/EVAL for any left). */
async function scriptCpuUsec(client: RedisClient): Promise<number> {
  let usec = 0;
  for (const node of primaries(client)) {
    const info = await node.info('commandstats');
    for (const command of ['fcall', 'evalsha', 'eval']) usec += Number(new RegExp(`cmdstat_${command}:calls=\\d+,usec=(\\d+)`).exec(info)?.[1] ?? 0);
  }
  return usec;
}

/** The Redis process's CPU time (user + system, µs) per primary, by "host:port". */
async function processCpuUsec(client: RedisClient): Promise<Map<string, number>> {
  const cpu = new Map<string, number>();
  for (const node of primaries(client)) {
    const info = await node.info('cpu');
    const seconds = ['used_cpu_user', 'used_cpu_sys'].reduce((sum, field) => sum + Number(new RegExp(`${field}:([\\d.]+)`).exec(info)?.[1] ?? 0), 0);
    cpu.set(`${node.options.host}:${node.options.port}`, seconds * 1e6);
  }
  return cpu;
}

/** Each primary's process CPU when the stats were last reset. */
const cpuAtReset = new WeakMap<object, Map<string, number>>();

/**
 * CPU each primary's Redis process spent since the last reset, busiest first: every command, the
 * scripts' inner ones once (commandstats counts those twice, in the script and on their own), and
 * the network I/O around them.
 */
async function perPrimaryCpuUsec(client: RedisClient): Promise<number[]> {
  const before = cpuAtReset.get(client) ?? new Map<string, number>();
  const now = await processCpuUsec(client);
  return [...now].map(([node, usec]) => usec - (before.get(node) ?? 0)).sort((a, b) => b - a);
}

/** CPU of every primary's Redis process since the last reset (as perPrimaryCpuUsec, summed). */
async function allCommandsCpuUsec(client: RedisClient): Promise<number> {
  return (await perPrimaryCpuUsec(client)).reduce((sum, usec) => sum + usec, 0);
}

/** The API as shipped (bench/stockhold-api-server), in its own process; resolves with its port. */
function startApi(env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(__dirname, 'stockhold-api-server.js'), [], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    child.once('message', (message: { port: number }) => resolve({ child, port: message.port }));
    child.once('exit', (code) => reject(new Error(`the API exited with ${code}`)));
  });
}

let httpRuns = 0;

interface HttpTarget {
  readonly name: string;
  readonly port: number;
  readonly client: RedisClient;
  readonly body: string;
}

async function runHttp(target: HttpTarget, seconds: number): Promise<{ requestsPerSecond: number; p50Ms: number; p99Ms: number; cpuUsecPerReservation: number; unexpected: number; created: number }> {
  await resetStats(target.client);
  // A fresh key per request across every run, so that no request is a replay or a reused key.
  const run = (httpRuns += 1);
  let counter = 0;
  const result = await autocannon({
    url: `http://127.0.0.1:${target.port}/v1/reservations`,
    connections,
    duration: seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
    body: target.body,
    requests: [{ setupRequest: (request: any) => ({ ...request, headers: { ...request.headers, 'idempotency-key': `bc-${process.pid}-${run}-${(counter += 1)}` } }) }],
  });
  const created = result['2xx'];
  return { requestsPerSecond: result.requests.average, p50Ms: result.latency.p50, p99Ms: result.latency.p99, cpuUsecPerReservation: (await allCommandsCpuUsec(target.client)) / Math.max(created, 1), unexpected: result.non2xx + result.errors, created };
}

async function resetStats(client: RedisClient): Promise<void> {
  for (const node of primaries(client)) await node.config('RESETSTAT');
  cpuAtReset.set(client, await processCpuUsec(client));
}

async function run(target: Target): Promise<{ cartsPerSecond: number; cpuUsecPerCart: number }> {
  await resetStats(target.client);
  let done = 0;
  let counter = 0;
  const deadline = Date.now() + durationMs;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (Date.now() < deadline) {
        counter += 1;
        await target.cart(counter);
        done += 1;
      }
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  return { cartsPerSecond: done / seconds, cpuUsecPerCart: (await scriptCpuUsec(target.client)) / done };
}

async function seed(scripts: ScriptRunner, skus: readonly string[]): Promise<void> {
  for (const sku of skus) await prepareStockChange(scripts, keys, { sku, ledgerSeq: 1, ledgerOnHand: stockUnits, reclaimPerSkuMax: 10, holdsRebuildMax: 10 });
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

async function main(): Promise<void> {
  process.stdout.write('starting a single Redis and a 3+3 Redis Cluster on loopback...\n');
  const single = await PrivateRedis.start();
  const cluster = await PrivateRedisCluster.start({ primaries: 3, replicasPerPrimary: 1 });
  const singleClient = createRedis({ url: single.url, commandTimeoutMs: 5000, autoPipelining: true });
  const clusterClient = createClusterClient(cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })), { commandTimeoutMs: 5000, autoPipelining: true });
  try {
    await (singleClient as Redis).connect();
    await clusterClient.connect();
    const singleScripts = new ScriptRunner(singleClient);
    const clusterScripts = new ScriptRunner(clusterClient);
    const hot = 'HOT-A';
    let other = 'HOT-B';
    for (let index = 0; slotOf(keys.skuState(other)) === slotOf(keys.skuState(hot)); index += 1) other = `HOT-B${index}`;
    await seed(singleScripts, [hot, other]);
    await seed(clusterScripts, [hot, other]);
    const oneLine = [{ sku: hot, quantity: 1 }];
    const twoLines = [{ sku: hot, quantity: 1 }, { sku: other, quantity: 1 }];
    const reservation = (index: number) => `${index.toString(36)}-${randomBytes(6).toString('base64url')}`;
    // One reservation per call (no batching), as each cluster step below is one call.
    const singleReserve = new ReservationScript(singleScripts, keys, 1);
    const single1: Target = {
      name: 'single Redis, 1-line cart (createReservation)',
      client: singleClient,
      scripts: singleScripts,
      cart: async (index) => {
        const id = reservation(index);
        const result = await singleReserve.create({ id, clientId: 'bench', idempotencyKey: id, fingerprint: 'f', customerId: null, lines: oneLine, holdTtlMs, idempotencyTtlMs: 60_000, retentionMs: 60_000, reclaimPerSkuMax: 10 });
        if (result.kind !== 'created') throw new Error(`createReservation: ${result.kind}`);
      },
    };
    const single2: Target = { ...single1, name: 'single Redis, 2-line cart (createReservation)', cart: async (index) => {
      const id = reservation(index);
      const result = await singleReserve.create({ id, clientId: 'bench', idempotencyKey: id, fingerprint: 'f', customerId: null, lines: twoLines, holdTtlMs, idempotencyTtlMs: 60_000, retentionMs: 60_000, reclaimPerSkuMax: 10 });
      if (result.kind !== 'created') throw new Error(`createReservation: ${result.kind}`);
    } };
    const clusterCart = (lines: typeof oneLine) => async (index: number) => {
      const id = reservation(index);
      const expiresAtMs = Date.now() + holdTtlMs;
      for (const group of slotGroups(keys, lines)) {
        const result = await holdLines(clusterScripts, keys, { reservationId: id, expiresAtMs, reclaimPerSkuMax: 10, lines: group });
        if (result.kind !== 'held') throw new Error(`holdLines: ${result.kind}`);
      }
    };
    const cluster1: Target = { name: 'cluster, 1-slot cart (holdLines x1)', client: clusterClient, scripts: clusterScripts, cart: clusterCart(oneLine) };
    const cluster2: Target = { name: 'cluster, 2-slot cart (holdLines x2)', client: clusterClient, scripts: clusterScripts, cart: clusterCart(twoLines) };
    const targets = [single1, single2, cluster1, cluster2];
    const results = new Map<string, Array<{ cartsPerSecond: number; cpuUsecPerCart: number }>>();
    for (const target of targets) await run({ ...target }); // warm-up (scripts loaded, JIT)
    for (let round = 1; round <= rounds; round += 1) {
      for (const target of round % 2 === 1 ? targets : [...targets].reverse()) {
        const result = await run(target);
        results.set(target.name, [...(results.get(target.name) ?? []), result]);
        process.stdout.write(`round ${round} ${target.name.padEnd(48)} ${result.cartsPerSecond.toFixed(0).padStart(7)} carts/s  Redis CPU ${result.cpuUsecPerCart.toFixed(1)} µs/cart\n`);
      }
    }
    const rate = (name: string) => median(results.get(name)!.map((result) => result.cartsPerSecond));
    const cpu = (name: string) => median(results.get(name)!.map((result) => result.cpuUsecPerCart));
    process.stdout.write(`\nmedians of ${rounds} rounds, ${durationMs / 1000} s each, ${inFlight} carts in flight from one process:\n`);
    for (const target of targets) {
      process.stdout.write(`${target.name.padEnd(48)} ${rate(target.name).toFixed(0).padStart(7)} carts/s  ${cpu(target.name).toFixed(1)} µs Redis CPU per cart = ${(1e6 / cpu(target.name)).toFixed(0)} carts/s per Redis core\n`);
    }
    process.stdout.write(`2-slot / 1-slot cart on the cluster: ${(rate(cluster2.name) / rate(cluster1.name)).toFixed(2)}x the rate, ${(cpu(cluster2.name) / cpu(cluster1.name)).toFixed(2)}x the Redis CPU\n`);
    process.stdout.write(`cluster 1-slot step / single Redis 1-line cart: ${(rate(cluster1.name) / rate(single1.name)).toFixed(2)}x the rate, ${(cpu(cluster1.name) / cpu(single1.name)).toFixed(2)}x the Redis CPU\n`);

    // Part 2: whole reservations through the API as shipped.
    const apiEnv = { REDIS_KEY_PREFIX: keyPrefix, API_KEYS: `bench:checkout:${secret}`, LOG_LEVEL: 'warn', NODE_ENV: 'production', METRICS_ENABLED: 'true' };
    const singleApi = await startApi({ ...apiEnv, REDIS_URL: single.url });
    const clusterApi = await startApi({ ...apiEnv, REDIS_CLUSTER_NODES: cluster.seeds, REDIS_CONFIRM_REPLICAS: '1' });
    try {
      const body = (lines: typeof oneLine) => JSON.stringify({ lines, ttlSeconds: 900 });
      const httpTargets: HttpTarget[] = [
        { name: 'HTTP single Redis, 1-line cart', port: singleApi.port, client: singleClient, body: body(oneLine) },
        { name: 'HTTP cluster, 1-line cart', port: clusterApi.port, client: clusterClient, body: body(oneLine) },
        { name: 'HTTP cluster, 2-slot cart', port: clusterApi.port, client: clusterClient, body: body(twoLines) },
      ];
      const httpResults = new Map<string, Array<Awaited<ReturnType<typeof runHttp>>>>();
      for (const target of httpTargets) await runHttp(target, 2); // warm-up
      for (let round = 1; round <= rounds; round += 1) {
        for (const target of round % 2 === 1 ? httpTargets : [...httpTargets].reverse()) {
          const result = await runHttp(target, durationMs / 1000);
          httpResults.set(target.name, [...(httpResults.get(target.name) ?? []), result]);
          process.stdout.write(`round ${round} ${target.name.padEnd(34)} ${result.requestsPerSecond.toFixed(0).padStart(6)} req/s  p50 ${result.p50Ms} ms  p99 ${result.p99Ms} ms  Redis CPU ${result.cpuUsecPerReservation.toFixed(1)} µs/reservation  unexpected ${result.unexpected}\n`);
        }
      }
      const of = (name: string, pick: (result: Awaited<ReturnType<typeof runHttp>>) => number) => median(httpResults.get(name)!.map(pick));
      process.stdout.write(`\nmedians of ${rounds} rounds, ${durationMs / 1000} s each, ${connections} connections, one API process:\n`);
      for (const target of httpTargets) {
        const usec = of(target.name, (result) => result.cpuUsecPerReservation);
        process.stdout.write(`${target.name.padEnd(34)} ${of(target.name, (result) => result.requestsPerSecond).toFixed(0).padStart(6)} req/s  p50 ${of(target.name, (result) => result.p50Ms)} ms  p99 ${of(target.name, (result) => result.p99Ms)} ms  ${usec.toFixed(1)} µs Redis CPU = ${(1e6 / usec).toFixed(0)} reservations/s per Redis core\n`);
      }
      const [singleHttp, cluster1Http, cluster2Http] = httpTargets.map((target) => target.name) as [string, string, string];
      const rateOf = (name: string) => of(name, (result) => result.requestsPerSecond);
      const cpuOf = (name: string) => of(name, (result) => result.cpuUsecPerReservation);
      process.stdout.write(`cluster 1-line / single Redis 1-line: ${(rateOf(cluster1Http) / rateOf(singleHttp)).toFixed(2)}x the rate, ${(cpuOf(cluster1Http) / cpuOf(singleHttp)).toFixed(2)}x the Redis CPU\n`);
      process.stdout.write(`cluster 2-slot / cluster 1-line: ${(rateOf(cluster2Http) / rateOf(cluster1Http)).toFixed(2)}x the rate, ${(cpuOf(cluster2Http) / cpuOf(cluster1Http)).toFixed(2)}x the Redis CPU\n`);
    } finally {
      singleApi.child.kill('SIGTERM');
      clusterApi.child.kill('SIGTERM');
    }

    // Part 3: one hot SKU, 1 stripe and 3 stripes, on the cluster.
    const databaseUrl = `postgres://postgres@127.0.0.1:5432/stockhold_bench_${randomBytes(4).toString('hex')}`;
    await prepareDatabaseAt(databaseUrl);
    const adminSecret = 'bench-admin-secret';
    const stripedApi = await startApi({ ...apiEnv, API_KEYS: `bench:checkout:${secret},benchadmin:admin:${adminSecret}`, DATABASE_URL: databaseUrl, REDIS_CLUSTER_NODES: cluster.seeds, REDIS_CONFIRM_REPLICAS: '1' });
    try {
      const hotSkus = { 1: `HOT-S1-${randomBytes(3).toString('hex')}`, 3: `HOT-S3-${randomBytes(3).toString('hex')}` } as const;
      for (const [stripes, sku] of Object.entries(hotSkus)) {
        const made = await fetch(`http://127.0.0.1:${stripedApi.port}/v1/skus/${sku}/stock`, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${adminSecret}` }, body: JSON.stringify({ onHand: stockUnits, stripes: Number(stripes) }) });
        if (made.status !== 200) throw new Error(`PUT stock ${sku}: ${made.status} ${await made.text()}`);
      }
      const stripeTargets = ([1, 3] as const).map((stripes) => ({ name: `HTTP cluster, hot SKU, ${stripes} stripe${stripes === 1 ? '' : 's'}`, port: stripedApi.port, client: clusterClient, body: JSON.stringify({ lines: [{ sku: hotSkus[stripes], quantity: 1 }], ttlSeconds: 900 }) }));
      const stripeResults = new Map<string, Array<{ requestsPerSecond: number; p99Ms: number; busiestUsec: number; spreadUsec: number[] }>>();
      for (const target of stripeTargets) await runHttp(target, 2); // warm-up
      for (let round = 1; round <= rounds; round += 1) {
        for (const target of round % 2 === 1 ? stripeTargets : [...stripeTargets].reverse()) {
          const result = await runHttp(target, durationMs / 1000);
          const created = Math.max(1, result.created);
          const spread = (await perPrimaryCpuUsec(clusterClient)).map((usec) => usec / created);
          stripeResults.set(target.name, [...(stripeResults.get(target.name) ?? []), { requestsPerSecond: result.requestsPerSecond, p99Ms: result.p99Ms, busiestUsec: spread[0]!, spreadUsec: spread }]);
          process.stdout.write(`round ${round} ${target.name.padEnd(34)} ${result.requestsPerSecond.toFixed(0).padStart(6)} req/s  p99 ${result.p99Ms} ms  Redis CPU per reservation by primary ${spread.map((usec) => usec.toFixed(1)).join(' / ')} µs  unexpected ${result.unexpected}\n`);
        }
      }
      process.stdout.write(`\nmedians of ${rounds} rounds, one hot SKU on the 3-primary cluster, one API process:\n`);
      for (const target of stripeTargets) {
        const results = stripeResults.get(target.name)!;
        const busiest = median(results.map((result) => result.busiestUsec));
        process.stdout.write(`${target.name.padEnd(34)} ${median(results.map((result) => result.requestsPerSecond)).toFixed(0).padStart(6)} req/s  p99 ${median(results.map((result) => result.p99Ms))} ms  busiest primary ${busiest.toFixed(1)} µs per reservation = ${(1e6 / busiest).toFixed(0)} reservations/s for this SKU before that primary's core is full\n`);
      }
      const busiestOf = (stripes: 1 | 3) => median(stripeResults.get(stripeTargets[stripes === 1 ? 0 : 1]!.name)!.map((result) => result.busiestUsec));
      process.stdout.write(`3 stripes / 1 stripe: the busiest primary's CPU per reservation ${(busiestOf(3) / busiestOf(1)).toFixed(2)}x, so one SKU's ceiling ${(busiestOf(1) / busiestOf(3)).toFixed(2)}x\n`);
    } finally {
      stripedApi.child.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 500));
      await dropDatabase(databaseUrl).catch(() => undefined);
    }
  } finally {
    singleClient.disconnect();
    clusterClient.disconnect();
    await cluster.remove();
    await single.remove();
  }
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack}\n`);
  process.exit(1);
});
