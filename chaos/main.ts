// `npm run chaos -- --duration S --seed N [--clients C] [--skus K] [--data-loss | --redis-cluster]
// [--stripes K] [--faults a,b] [--json FILE] [--keep-logs]`: one seeded fault-injection run against the production process layout, then the
// history checked. Exits 0 when no check found a violation, 1 when one did, 2 on bad arguments.
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import type { FaultKind } from './history';
import { redisClusterWeights } from './nemesis';
import { stripesMax } from '../lib/stock/stripes';
import { formatSummary, formatViolation, summarise, violationsPrintedMax } from './report';
import { removeLogs, runChaos, type RunResult } from './run';

export const faultKinds: readonly FaultKind[] = [
  'kill-api', 'kill-worker', 'kill-reconciler', 'pause-worker', 'redis-restart', 'redis-client-kill', 'redis-pause-writes',
  'redis-latency', 'redis-stall', 'postgres-restart', 'postgres-terminate', 'postgres-table-lock', 'postgres-latency',
  'postgres-stall', 'stock-race', 'redis-flushall', 'redis-restart-empty', 'redis-primary-kill',
];

export const durationSMax = 24 * 3600;
export const clientsMax = 512;
export const skusMax = 100;

interface Arguments {
  durationS: number;
  seed: number;
  clients: number;
  skus: number;
  dataLoss: boolean;
  redisCluster: boolean;
  stripes: number;
  only: FaultKind[] | undefined;
  json: string | undefined;
  keepLogs: boolean;
}

function parseArguments(argv: readonly string[]): Arguments {
  const parsed: Arguments = { durationS: 60, seed: Date.now() % 1_000_000, clients: 32, skus: 6, dataLoss: false, redisCluster: false, stripes: 1, only: undefined, json: undefined, keepLogs: false };
  const integer = (name: string, raw: string | undefined, min: number, max: number) => {
    if (raw === undefined || !/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new Error(`${name} needs a whole number from ${min} to ${max}`);
    return Number(raw);
  };
  for (let index = 0; index < argv.length; index += 1) {
    const flag = argv[index];
    const value = argv[index + 1];
    switch (flag) {
      case '--duration': parsed.durationS = integer(flag, value, 1, durationSMax); index += 1; break;
      case '--seed': parsed.seed = integer(flag, value, 0, 2 ** 32 - 1); index += 1; break;
      case '--clients': parsed.clients = integer(flag, value, 1, clientsMax); index += 1; break;
      case '--skus': parsed.skus = integer(flag, value, 1, skusMax); index += 1; break;
      case '--data-loss': parsed.dataLoss = true; break;
      case '--redis-cluster': parsed.redisCluster = true; break;
      case '--stripes': parsed.stripes = integer(flag, value, 1, stripesMax); index += 1; break;
      case '--keep-logs': parsed.keepLogs = true; break;
      case '--json':
        if (value === undefined) throw new Error('--json needs a file name');
        parsed.json = value;
        index += 1;
        break;
      case '--faults': {
        const kinds = (value ?? '').split(',').filter((kind) => kind !== '');
        const unknown = kinds.filter((kind) => !faultKinds.includes(kind as FaultKind));
        if (kinds.length === 0 || unknown.length > 0) throw new Error(`--faults takes a comma-separated list of: ${faultKinds.join(', ')}`);
        parsed.only = kinds as FaultKind[];
        index += 1;
        break;
      }
      default: throw new Error(`unknown argument ${String(flag)}`);
    }
  }
  if (parsed.redisCluster && parsed.dataLoss) throw new Error('--data-loss runs on one Redis only (a cluster run kills primaries instead)');
  const singleOnly = Object.entries(redisClusterWeights).filter(([, weight]) => weight === 0).map(([kind]) => kind);
  const unavailable = (parsed.only ?? []).filter((kind) => (parsed.redisCluster ? singleOnly.includes(kind) : kind === 'redis-primary-kill'));
  if (unavailable.length > 0) throw new Error(`--faults ${unavailable.join(',')}: not available ${parsed.redisCluster ? 'on a Redis Cluster' : 'without --redis-cluster'}`);
  return parsed;
}

/** The history can hold millions of operations: it is streamed, one operation per line. */
async function writeJson(file: string, args: Arguments, result: RunResult, summary: unknown): Promise<void> {
  const out = createWriteStream(file);
  const write = (text: string) => new Promise<void>((resolve) => (out.write(text) ? resolve() : out.once('drain', () => resolve())));
  await write(`{"seed":${args.seed},"durationS":${args.durationS},"clients":${args.clients},"dataLoss":${args.dataLoss},"redisCluster":${args.redisCluster},"stripes":${args.stripes},\n`);
  await write(`"verdict":${JSON.stringify({ ok: result.violations.length === 0, summary, timings: result.timings, violations: result.violations })},\n`);
  await write(`"faults":${JSON.stringify(result.faults)},\n"operations":[\n`);
  for (let index = 0; index < result.operations.length; index += 1) await write(`${index === 0 ? '' : ',\n'}${JSON.stringify(result.operations[index])}`);
  await write('\n]}\n');
  await new Promise<void>((resolve) => out.end(() => resolve()));
}

async function main(): Promise<void> {
  let args: Arguments;
  try {
    args = parseArguments(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`chaos: ${(error as Error).message}\n`);
    process.exit(2);
  }
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const result = await runChaos({ seed: args.seed, durationS: args.durationS, clients: args.clients, skus: args.skus, dataLoss: args.dataLoss, redisCluster: args.redisCluster, stripes: args.stripes, only: args.only, distDirectory: path.resolve(__dirname, '..'), log });
  const summary = summarise(result.operations, result.faults, result.violations, result.ledger, result.check.lost);
  log('');
  log(formatSummary(summary, args.seed, args.durationS));
  log(`final: ready after ${result.timings.readyMs} ms, acknowledged commits drained after ${result.timings.commitsDrainedMs ?? 'never'} ms, holds cleared after ${result.timings.holdsClearedMs ?? 'never'} ms, Redis agreed with the ledger after ${result.timings.agreementMs ?? 'never'} ms`);
  if (args.json !== undefined) await writeJson(args.json, args, result, summary);
  if (result.violations.length > 0) {
    log('');
    log(`VIOLATIONS: ${result.violations.length}. Reproduce the schedule with --seed ${args.seed}${args.dataLoss ? ' --data-loss' : ''}${args.redisCluster ? ' --redis-cluster' : ''}${args.stripes > 1 ? ` --stripes ${args.stripes}` : ''}; service logs in ${result.logDirectory}`);
    for (const violation of result.violations.slice(0, violationsPrintedMax)) log(formatViolation(violation, result.operations, result.faults));
    process.exitCode = 1;
    return;
  }
  if (!args.keepLogs) removeLogs(result);
  log('verdict: no violations');
}

main().catch((error) => {
  process.stderr.write(`chaos failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(3);
});
