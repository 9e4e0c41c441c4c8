// `npm run bench`: POST /v1/reservations of the server as shipped (auth, validation,
// idempotency, access logging on) against a bare Express 5 endpoint, both in their own process,
// driven by autocannon with the same connections for the same time, in alternating rounds.
// It reports per-round throughput and the ratio of the medians. It seeds its hot SKU straight
// into Redis under a key prefix of its own and deletes those keys afterwards: it writes nothing
// to Postgres and touches nothing it did not create.
import { execFile, fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { loadConfig } from '../lib/config';
import { deleteKeysWithPrefix } from '../lib/redis/delete-keys';

const flags = new Map<string, string>();
for (let index = 2; index < process.argv.length; index += 2) flags.set(String(process.argv[index]).replace(/^--/, ''), String(process.argv[index + 1]));
const durationSec = Number(flags.get('duration') ?? 5);
const connections = Number(flags.get('connections') ?? 64);
const rounds = Number(flags.get('rounds') ?? 3);
// `--baseline DIR`: also run the API of another build (the `dist/` of an earlier commit, e.g. from
// `git worktree add /tmp/before <commit> && (cd /tmp/before && npm ci && npm run build)`), in
// the same alternating rounds, so a change is measured as a ratio against its predecessor.
const baselineDist = flags.get('baseline');
// `--many 1000,4000`: the many-connections rows (each `--many-duration` s, default 10), run after
// the rounds against the API as shipped (load shedding on) and with shedding off; `--many 0`: none.
const manyConnections = (flags.get('many') ?? '1000,4000').split(',').map(Number).filter((count) => count > 0);
const manyDurationSec = Number(flags.get('many-duration') ?? 10);
// `--many-only true`: only the many-connections rows; `--shed MAX_IN_FLIGHT=N,MAX_EVENT_LOOP_DELAY_MS=M`:
// the shedding API's bounds for those rows (default: the shipped defaults), to tune them.
const manyOnly = flags.get('many-only') === 'true';
const shedOverrides = Object.fromEntries((flags.get('shed') ?? '').split(',').filter((pair) => pair !== '').map((pair) => pair.split('=') as [string, string]));
if (Object.keys(shedOverrides).some((name) => !['MAX_IN_FLIGHT', 'MAX_EVENT_LOOP_DELAY_MS'].includes(name))) throw new Error('--shed takes MAX_IN_FLIGHT=N,MAX_EVENT_LOOP_DELAY_MS=M');
const manyConnectionsMax = 8000;
if (manyConnections.some((count) => !(Number.isInteger(count) && count <= manyConnectionsMax)) || !(manyDurationSec >= 1 && manyDurationSec <= 600)) {
  throw new Error(`--many: connection counts up to ${manyConnectionsMax}, comma-separated; --many-duration 1-600`);
}
const roundsMax = 20;
if (!(durationSec >= 1 && durationSec <= 600 && connections >= 1 && connections <= 1024 && rounds >= 1 && rounds <= roundsMax)) {
  throw new Error(`--duration 1-600, --connections 1-1024, --rounds 1-${roundsMax}`);
}

const config = loadConfig();
const prefix = `bench:${randomBytes(4).toString('hex')}:`;
const sku = 'BENCH-HOT';
const soldOutSku = 'BENCH-SOLD-OUT';
const secret = 'bench-checkout-secret';
const stockUnits = 1_000_000_000;

function startProcess(script: string, env: Record<string, string>, directory: string = __dirname): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(directory, script), [], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    child.once('message', (message: { port: number }) => resolve({ child, port: message.port }));
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** `npm run start:api` as shipped, with WEB_CONCURRENCY workers; resolves once /healthz answers. */
async function startCluster(env: Record<string, string>, workers: number): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'apps', 'api', 'main.js')], { env: { ...process.env, ...env, PORT: String(port), WEB_CONCURRENCY: String(workers) }, stdio: 'ignore' });
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((response) => response.ok, () => false);
    if (ok) return { child, port };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('the API cluster did not come up');
}

async function run(url: string, body: string, authorization: string | undefined, seconds: number, expectedStatus = 201) {
  let counter = 0;
  const result = await autocannon({
    url,
    connections,
    duration: seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
    body,
    requests: [{ setupRequest: (request: any) => ({ ...request, headers: { ...request.headers, 'idempotency-key': `b-${process.pid}-${(counter += 1)}` } }) }],
  });
  // autocannon counts responses by class: a sold-out run expects only 4xx (409s).
  const unexpected = expectedStatus === 201 ? result.non2xx : result.requests.total - result['4xx'];
  return { requestsPerSec: result.requests.average, p50Ms: result.latency.p50, p99Ms: result.latency.p99, non2xx: unexpected, errors: result.errors };
}

type BurstRow = { servedPerSec: number; shedShare: number; servedP50Ms: number; servedP99Ms: number; shedP99Ms: number; other: number; errors: number };

/** wrk, when installed (apt-get install wrk): a C client, whose own latency at thousands of connections is small. */
function wrkPath(): string | undefined {
  for (const candidate of ['/usr/bin/wrk', '/usr/local/bin/wrk']) if (existsSync(candidate)) return candidate;
  return undefined;
}

/** Percentiles of a histogram {ms: count}. */
function histogramPercentile(histogram: Record<string, number>, fraction: number): number {
  const entries = Object.entries(histogram).map(([ms, count]) => [Number(ms), count] as const).sort((a, b) => a[0] - b[0]);
  const total = entries.reduce((sum, [, count]) => sum + count, 0);
  let seen = 0;
  for (const [ms, count] of entries) {
    seen += count;
    if (seen > total * fraction) return ms;
  }
  return entries.at(-1)?.[0] ?? 0;
}

/**
 * A drop's first burst through wrk (bench/many-connections.lua): each request's send time rides in
 * X-Request-Id, which the server echoes, so served (201) and shed (503) answers are timed apart.
 */
async function burstWithWrk(wrk: string, url: string, authorization: string, count: number, seconds: number): Promise<BurstRow> {
  const script = path.join(__dirname, '..', '..', 'bench', 'many-connections.lua');
  const body = JSON.stringify({ lines: [{ sku, quantity: 1 }], ttlSeconds: 900 });
  const output = await new Promise<string>((resolve, reject) => {
    execFile(wrk, ['-t2', `-c${count}`, `-d${seconds}s`, '--timeout', '10s', '-s', script, url, '--', `w${process.pid}-${count}-`, authorization, body], { maxBuffer: 64 * 1024 * 1024 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
  });
  const line = output.split('\n').find((candidate) => candidate.startsWith('RESULT '));
  if (line === undefined) throw new Error(`wrk printed no RESULT line:\n${output}`);
  const result = JSON.parse(line.slice('RESULT '.length)) as { served: Record<string, number>; shed: Record<string, number>; other: number; unmatched: number; errors: number; durationUs: number };
  const servedCount = Object.values(result.served).reduce((sum, n) => sum + n, 0);
  const shedCount = Object.values(result.shed).reduce((sum, n) => sum + n, 0);
  const answered = servedCount + shedCount + result.other + result.unmatched;
  return {
    servedPerSec: servedCount / (result.durationUs / 1e6),
    shedShare: answered === 0 ? 0 : shedCount / answered,
    servedP50Ms: histogramPercentile(result.served, 0.5),
    servedP99Ms: histogramPercentile(result.served, 0.99),
    shedP99Ms: histogramPercentile(result.shed, 0.99),
    other: result.other + result.unmatched,
    errors: result.errors,
  };
}

/**
 * A drop's first burst with autocannon (when wrk is not installed): each answer timed by its
 * status. At thousands of connections autocannon's own event loop adds seconds to its tail (a bare
 * Node endpoint measured p99 3.3 s at 4,000 connections with it, 163 ms with wrk).
 */
async function burst(url: string, authorization: string, count: number, seconds: number): Promise<BurstRow> {
  const served: number[] = [];
  const shed: number[] = [];
  let other = 0;
  let counter = 0;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url,
      connections: count,
      duration: seconds,
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization },
      body: JSON.stringify({ lines: [{ sku, quantity: 1 }], ttlSeconds: 900 }),
      requests: [{ setupRequest: (request: any) => ({ ...request, headers: { ...request.headers, 'idempotency-key': `m-${process.pid}-${count}-${(counter += 1)}` } }) }],
    }, (error, finished) => (error ? reject(error) : resolve(finished)));
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      if (status === 201) served.push(ms);
      else if (status === 503) shed.push(ms);
      else other += 1;
    });
  });
  const percentile = (values: number[], fraction: number) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] as number);
  };
  const answered = served.length + shed.length + other;
  return {
    servedPerSec: served.length / seconds,
    shedShare: answered === 0 ? 0 : shed.length / answered,
    servedP50Ms: percentile(served, 0.5),
    servedP99Ms: percentile(served, 0.99),
    shedP99Ms: percentile(shed, 0.99),
    other,
    errors: result.errors + result.timeouts,
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;


async function main(): Promise<void> {
  const redis = new Redis(config.redisUrl);
  if (manyOnly) {
    try {
      process.stdout.write(await manyConnectionRows(redis));
    } finally {
      await deleteKeysWithPrefix(redis, prefix);
      redis.disconnect();
    }
    return;
  }
  await redis.hset(`${prefix}sku:{${sku}}`, 'onHand', stockUnits, 'pos', 0, 'reserved', 0, 'debit', 0);
  await redis.hset(`${prefix}sku:{${soldOutSku}}`, 'onHand', 0, 'pos', 0, 'reserved', 0, 'debit', 0);
  const bare = await startProcess('bare-express-server.js', { PORT: '0' });
  const apiEnv = { REDIS_KEY_PREFIX: prefix, API_KEYS: `bench:checkout:${secret}`, LOG_LEVEL: 'info', NODE_ENV: 'production' };
  const api = await startProcess('stockhold-api-server.js', { ...apiEnv, PORT: '0' });
  // The cost of watching: the same API with the HTTP metrics middleware and /metrics off.
  const metricsOff = await startProcess('stockhold-api-server.js', { ...apiEnv, METRICS_ENABLED: 'false', PORT: '0' });
  const clusterWorkers = 2;
  const clustered = await startCluster(apiEnv, clusterWorkers);
  const baseline = baselineDist === undefined ? undefined : await startProcess('stockhold-api-server.js', { ...apiEnv, REDIS_KEY_PREFIX: `${prefix}base:`, PORT: '0' }, path.resolve(baselineDist, 'bench'));
  if (baseline !== undefined) await redis.hset(`${prefix}base:sku:{${sku}}`, 'onHand', stockUnits, 'pos', 0, 'reserved', 0, 'debit', 0, 'version', 1, 'ov', 0, 'ls', 0);
  const body = JSON.stringify({ lines: [{ sku, quantity: 1 }], ttlSeconds: 900 });
  const targets = baseline !== undefined ? [
    { name: 'bare-express', url: `http://127.0.0.1:${bare.port}/v1/reservations`, authorization: undefined },
    { name: 'stockhold-reservation', url: `http://127.0.0.1:${api.port}/v1/reservations`, authorization: `Bearer ${secret}` },
    { name: 'baseline-reservation', url: `http://127.0.0.1:${baseline.port}/v1/reservations`, authorization: `Bearer ${secret}` },
  ] as Array<{ name: string; url: string; authorization: string | undefined; body?: string; expectedStatus?: number }> : [
    { name: 'bare-express', url: `http://127.0.0.1:${bare.port}/v1/reservations`, authorization: undefined },
    { name: 'stockhold-reservation', url: `http://127.0.0.1:${api.port}/v1/reservations`, authorization: `Bearer ${secret}` },
    { name: 'stockhold-metrics-off', url: `http://127.0.0.1:${metricsOff.port}/v1/reservations`, authorization: `Bearer ${secret}` },
    { name: `stockhold-cluster-${clusterWorkers}`, url: `http://127.0.0.1:${clustered.port}/v1/reservations`, authorization: `Bearer ${secret}` },
    { name: 'stockhold-sold-out', url: `http://127.0.0.1:${api.port}/v1/reservations`, authorization: `Bearer ${secret}`, body: JSON.stringify({ lines: [{ sku: soldOutSku, quantity: 1 }], ttlSeconds: 900 }), expectedStatus: 409 },
  ];
  const results = new Map<string, Array<Awaited<ReturnType<typeof run>>>>();
  let manyRows = '';
  try {
    process.stdout.write(`warm-up: 2 s each\n`);
    for (const target of targets) await run(target.url, target.body ?? body, target.authorization, 2, target.expectedStatus);
    for (let round = 1; round <= rounds; round += 1) {
      for (const target of round % 2 === 1 ? targets : [...targets].reverse()) {
        const result = await run(target.url, target.body ?? body, target.authorization, durationSec, target.expectedStatus);
        results.set(target.name, [...(results.get(target.name) ?? []), result]);
        process.stdout.write(`round ${round} ${target.name.padEnd(24)} ${result.requestsPerSec.toFixed(0).padStart(7)} req/s  p50 ${result.p50Ms} ms  p99 ${result.p99Ms} ms  unexpected ${result.non2xx}  errors ${result.errors}\n`);
      }
    }
    if (baseline === undefined) {
      // The rounds' processes stop first: the bursts get the machine to themselves.
      for (const child of [bare.child, api.child, metricsOff.child, clustered.child]) child.kill('SIGTERM');
      process.stdout.write(`many-connections rows: ${manyConnections.join(', ')} connections, ${manyDurationSec} s each, two APIs\n`);
      manyRows = await manyConnectionRows(redis);
    }
  } finally {
    bare.child.kill('SIGTERM');
    api.child.kill('SIGTERM');
    metricsOff.child.kill('SIGTERM');
    clustered.child.kill('SIGTERM');
    baseline?.child.kill('SIGTERM');
    await deleteKeysWithPrefix(redis, prefix);
    redis.disconnect();
  }
  const bareMedian = median(results.get('bare-express')!.map((r) => r.requestsPerSec));
  const apiMedian = median(results.get('stockhold-reservation')!.map((r) => r.requestsPerSec));
  if (baseline !== undefined) {
    const baselineMedian = median(results.get('baseline-reservation')!.map((r) => r.requestsPerSec));
    const p99 = (name: string) => median(results.get(name)!.map((r) => r.p99Ms));
    process.stdout.write(`\nmedian of ${rounds} rounds, ${connections} connections, ${durationSec} s each, one hot SKU\n`);
    process.stdout.write(`bare Express 5 + express.json():  ${bareMedian.toFixed(0)} req/s\n`);
    process.stdout.write(`this build:     ${apiMedian.toFixed(0)} req/s = ${(apiMedian / bareMedian).toFixed(2)}x bare, p99 ${p99('stockhold-reservation')} ms\n`);
    process.stdout.write(`baseline build: ${baselineMedian.toFixed(0)} req/s = ${(baselineMedian / bareMedian).toFixed(2)}x bare, p99 ${p99('baseline-reservation')} ms (${baselineDist})\n`);
    process.stdout.write(`this build / baseline: ${(apiMedian / baselineMedian).toFixed(3)}\n`);
    return;
  }
  const clusterMedian = median(results.get(`stockhold-cluster-${clusterWorkers}`)!.map((r) => r.requestsPerSec));
  process.stdout.write(`\nmedian of ${rounds} rounds, ${connections} connections, ${durationSec} s each, one hot SKU\n`);
  process.stdout.write(`bare Express 5 + express.json():  ${bareMedian.toFixed(0)} req/s\n`);
  process.stdout.write(`POST /v1/reservations as shipped: ${apiMedian.toFixed(0)} req/s\n`);
  const p99Median = (name: string) => median(results.get(name)!.map((r) => r.p99Ms));
  process.stdout.write(`ratio: ${(apiMedian / bareMedian).toFixed(2)}x; p99 (median of rounds) ${p99Median('stockhold-reservation')} ms vs bare ${p99Median('bare-express')} ms\n`);
  process.stdout.write(`POST /v1/reservations, WEB_CONCURRENCY=${clusterWorkers}: ${clusterMedian.toFixed(0)} req/s, ratio ${(clusterMedian / bareMedian).toFixed(2)}x\n`);
  const offMedian = median(results.get('stockhold-metrics-off')!.map((r) => r.requestsPerSec));
  const p99Of = (name: string) => median(results.get(name)!.map((r) => r.p99Ms));
  process.stdout.write(`metrics on / off (METRICS_ENABLED=false): ${apiMedian.toFixed(0)} / ${offMedian.toFixed(0)} req/s = ${(apiMedian / offMedian).toFixed(3)} (cost ${((1 - apiMedian / offMedian) * 100).toFixed(1)} %), p99 ${p99Of('stockhold-reservation')} / ${p99Of('stockhold-metrics-off')} ms\n`);
  const soldOutMedian = median(results.get('stockhold-sold-out')!.map((r) => r.requestsPerSec));
  process.stdout.write(`POST /v1/reservations on a sold-out SKU (409): ${soldOutMedian.toFixed(0)} req/s, ${(soldOutMedian / apiMedian).toFixed(2)}x the in-stock rate\n`);
  process.stdout.write(manyRows);
}

/**
 * The many-connections rows: the API as shipped (MAX_IN_FLIGHT and MAX_EVENT_LOOP_DELAY_MS at
 * their defaults) beside the same API with shedding off, each in a process of its own.
 */
async function manyConnectionRows(redis: Redis): Promise<string> {
  if (manyConnections.length === 0) return '';
  let out = '';
  const apiEnv = { REDIS_KEY_PREFIX: prefix, API_KEYS: `bench:checkout:${secret}`, LOG_LEVEL: 'info', NODE_ENV: 'production' };
  await redis.hset(`${prefix}sku:{${sku}}`, 'onHand', stockUnits, 'pos', 0, 'reserved', 0, 'debit', 0);
  const shipped = await startProcess('stockhold-api-server.js', { ...apiEnv, ...shedOverrides, PORT: '0' });
  const unbounded = await startProcess('stockhold-api-server.js', { ...apiEnv, PORT: '0', MAX_IN_FLIGHT: '0', MAX_EVENT_LOOP_DELAY_MS: '0' });
  const defaults = loadConfig({ ...process.env, ...apiEnv, ...shedOverrides });
  const wrk = wrkPath();
  const client = wrk === undefined ? 'autocannon (install wrk for a tail the client does not inflate)' : 'wrk -t2';
  out += (`\nmany connections, ${manyDurationSec} s each, ${client} (load shedding: MAX_IN_FLIGHT=${defaults.maxInFlight}, MAX_EVENT_LOOP_DELAY_MS=${defaults.maxEventLoopDelayMs})\n`);
  out += (`| connections | API | served/s | served p50 ms | served p99 ms | shed (503) | shed p99 ms | other | errors |\n|---:|:---|---:|---:|---:|---:|---:|---:|---:|\n`);
  try {
    for (const count of manyConnections) {
      for (const [name, target] of [[Object.keys(shedOverrides).length === 0 ? 'shedding on (shipped)' : 'shedding on (--shed)', shipped], ['shedding off', unbounded]] as const) {
        const url = `http://127.0.0.1:${target.port}/v1/reservations`;
        const row = wrk === undefined ? await burst(url, `Bearer ${secret}`, count, manyDurationSec) : await burstWithWrk(wrk, url, `Bearer ${secret}`, count, manyDurationSec);
        out += (`| ${count} | ${name} | ${row.servedPerSec.toFixed(0)} | ${row.servedP50Ms.toFixed(0)} | ${row.servedP99Ms.toFixed(0)} | ${(row.shedShare * 100).toFixed(1)} % | ${row.shedP99Ms.toFixed(0)} | ${row.other} | ${row.errors} |\n`);
      }
    }
  } finally {
    shipped.child.kill('SIGTERM');
    unbounded.child.kill('SIGTERM');
  }
  return out;
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack}\n`);
  process.exit(1);
});
