// The nemesis: a schedule of faults drawn from the run's seed, applied one after another with
// quiet gaps between them, each healed before the next. Every fault is logged with its start and
// end, so the checker can tell operations inside a fault window from those outside.
import { Redis } from 'ioredis';
import { Client } from 'pg';
import type { Fault, FaultKind } from './history';
import type { FaultProxy } from './proxy';
import type { Random } from './random';
import type { PrivatePostgres, PrivateRedis } from './servers';
import type { Service } from './processes';
import { sleep, type ChaosClient } from './workload';

export interface Timeouts {
  readonly redisCommandTimeoutMs: number;
  readonly postgresStatementTimeoutMs: number;
  readonly commitLockDurationMs: number;
}

export interface Cluster {
  readonly apis: readonly Service[];
  readonly workers: readonly Service[];
  readonly reconcilers: readonly Service[];
  readonly redis: PrivateRedis;
  readonly postgres: PrivatePostgres;
  readonly databaseName: string;
  readonly redisProxy: FaultProxy;
  readonly postgresProxy: FaultProxy;
  readonly timeouts: Timeouts;
}

const faultWeights: Record<FaultKind, number> = {
  'kill-api': 6,
  'kill-worker': 6,
  'kill-reconciler': 3,
  'pause-worker': 5,
  'redis-restart': 4,
  'redis-client-kill': 4,
  'redis-pause-writes': 4,
  'redis-latency': 4,
  'redis-stall': 4,
  'postgres-restart': 4,
  'postgres-terminate': 4,
  'postgres-table-lock': 5,
  'postgres-latency': 4,
  'postgres-stall': 5,
  'stock-race': 6,
  'redis-flushall': 0,
  'redis-restart-empty': 0,
};

export const dataLossWeights: Partial<Record<FaultKind, number>> = { 'redis-flushall': 3, 'redis-restart-empty': 3 };

export const gapMsMin = 300;
export const gapMsMax = 2500;

export class Nemesis {
  readonly faults: Fault[] = [];
  private readonly weights: Record<FaultKind, number>;

  constructor(
    private readonly cluster: Cluster,
    private readonly random: Random,
    private readonly raceClient: ChaosClient,
    private readonly skus: readonly string[],
    dataLoss: boolean,
    only: readonly FaultKind[] | undefined,
  ) {
    const weights = { ...faultWeights, ...(dataLoss ? dataLossWeights : {}) };
    if (only !== undefined) for (const kind of Object.keys(weights) as FaultKind[]) if (!only.includes(kind)) weights[kind] = 0;
    this.weights = weights;
  }

  async loop(stopped: () => boolean): Promise<void> {
    while (!stopped()) {
      await sleep(this.random.int(gapMsMin, gapMsMax));
      if (stopped()) break;
      await this.inject(this.random.weighted(this.weights));
    }
  }

  private async inject(kind: FaultKind): Promise<void> {
    const fault: Fault = { kind, target: '', startMs: Date.now(), endMs: 0 };
    const record = (target: string, detail?: string): void => {
      this.faults.push({ ...fault, target, startMs: Date.now(), ...(detail === undefined ? {} : { detail }) });
    };
    const index = this.faults.length;
    await this.apply(kind, record);
    const applied = this.faults[index];
    if (applied !== undefined) applied.endMs = Date.now();
  }

  private async apply(kind: FaultKind, record: (target: string, detail?: string) => void): Promise<void> {
    const { cluster, random } = this;
    const { timeouts } = cluster;
    switch (kind) {
      case 'kill-api':
      case 'kill-worker':
      case 'kill-reconciler': {
        const group = kind === 'kill-api' ? cluster.apis : kind === 'kill-worker' ? cluster.workers : cluster.reconcilers;
        const service = random.pick(group);
        record(service.name);
        service.kill();
        return sleep(1500);
      }
      case 'pause-worker': {
        const service = random.pick(cluster.workers);
        const pauseMs = timeouts.commitLockDurationMs + random.int(500, 2500);
        record(service.name, `${pauseMs} ms`);
        service.pause();
        await sleep(pauseMs);
        return service.resume();
      }
      case 'redis-restart':
      case 'redis-restart-empty': {
        const downMs = random.int(100, 1500);
        record('redis', `${downMs} ms down`);
        await cluster.redis.kill();
        if (kind === 'redis-restart-empty') cluster.redis.forgetPersistedData();
        await sleep(downMs);
        return cluster.redis.start();
      }
      case 'redis-client-kill':
        record('redis');
        return this.withRedis(async (redis) => void (await redis.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')));
      case 'redis-pause-writes': {
        const pauseMs = timeouts.redisCommandTimeoutMs + random.int(200, 1500);
        record('redis', `${pauseMs} ms`);
        await this.withRedis(async (redis) => void (await redis.call('CLIENT', 'PAUSE', String(pauseMs), 'WRITE')));
        return sleep(pauseMs);
      }
      case 'redis-flushall':
        record('redis');
        return this.withRedis(async (redis) => void (await redis.flushall()));
      case 'redis-latency':
      case 'postgres-latency': {
        const proxy = kind === 'redis-latency' ? cluster.redisProxy : cluster.postgresProxy;
        const latencyMs = random.int(20, 300);
        const lastsMs = random.int(1000, 4000);
        record(kind === 'redis-latency' ? 'redis' : 'postgres', `${latencyMs} ms for ${lastsMs} ms`);
        proxy.setLatency(latencyMs);
        await sleep(lastsMs);
        return proxy.setLatency(0);
      }
      case 'redis-stall':
      case 'postgres-stall': {
        const proxy = kind === 'redis-stall' ? cluster.redisProxy : cluster.postgresProxy;
        const stallMs = random.int(500, 4000);
        const reset = random.chance(0.4);
        record(kind === 'redis-stall' ? 'redis' : 'postgres', `${stallMs} ms${reset ? ', then reset' : ''}`);
        proxy.setStalled(true);
        await sleep(stallMs);
        if (reset) proxy.resetAll();
        return proxy.setStalled(false);
      }
      case 'postgres-restart': {
        const downMs = random.int(100, 2000);
        record('postgres', `${downMs} ms down`);
        await cluster.postgres.stop();
        await sleep(downMs);
        return cluster.postgres.start();
      }
      case 'postgres-terminate':
        record('postgres');
        return this.withPostgres(async (client) => void (await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'stockhold' AND pid <> pg_backend_pid()")));
      case 'postgres-table-lock': {
        const table = random.pick(['skus', 'ledger_entries', 'reservations']);
        const holdMs = timeouts.postgresStatementTimeoutMs + random.int(200, 2000);
        record('postgres', `${table} for ${holdMs} ms`);
        return this.withPostgres(async (client) => {
          await client.query('BEGIN');
          await client.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
          await sleep(holdMs);
          await client.query('ROLLBACK');
        });
      }
      case 'stock-race': {
        const sku = random.pick(this.skus);
        const count = random.int(4, 10);
        record(sku, `${count} changes`);
        return this.raceClient.stockRace(sku, count);
      }
    }
  }

  /** A direct connection (not through the proxy), so the nemesis itself is never faulted. */
  private async withRedis(action: (redis: Redis) => Promise<void>): Promise<void> {
    const redis = new Redis(this.cluster.redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => undefined);
    try {
      await redis.connect();
      await action(redis);
    } catch {
      // Redis may be down because of an earlier fault: this one then changes nothing.
    } finally {
      redis.disconnect();
    }
  }

  private async withPostgres(action: (client: Client) => Promise<void>): Promise<void> {
    const client = new Client({ connectionString: this.cluster.postgres.url(this.cluster.databaseName), connectionTimeoutMillis: 2000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await action(client);
    } catch {
      // Postgres may be restarting: this fault then changes nothing.
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Undoes whatever may still be in effect, so the system can go quiet. */
  async healAll(): Promise<void> {
    this.cluster.redisProxy.setLatency(0);
    this.cluster.redisProxy.setStalled(false);
    this.cluster.postgresProxy.setLatency(0);
    this.cluster.postgresProxy.setStalled(false);
    for (const service of [...this.cluster.apis, ...this.cluster.workers, ...this.cluster.reconcilers]) service.resume();
  }
}
