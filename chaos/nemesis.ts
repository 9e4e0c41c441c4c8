// The nemesis: a schedule of faults drawn from the run's seed, applied one after another with
// quiet gaps between them, each healed before the next. Every fault is logged with its start and
// end, so the checker can tell operations inside a fault window from those outside.
import { Redis } from 'ioredis';
import { Client } from 'pg';
import type { Fault, FaultKind } from './history';
import type { FaultProxy } from './proxy';
import type { Random } from './random';
import type { PrivatePostgres, PrivateRedis, PrivateRedisCluster } from './servers';
import type { Service } from './processes';
import { sleep, type ChaosClient } from './workload';

export interface Timeouts {
  readonly redisCommandTimeoutMs: number;
  readonly postgresStatementTimeoutMs: number;
  readonly commitLockDurationMs: number;
}

/** One Redis behind a fault proxy, or a Redis Cluster (three primaries, three replicas) reached directly. */
export type RedisSetup =
  | { readonly kind: 'single'; readonly server: PrivateRedis; readonly proxy: FaultProxy }
  | { readonly kind: 'cluster'; readonly cluster: PrivateRedisCluster };

export interface Cluster {
  readonly apis: readonly Service[];
  readonly workers: readonly Service[];
  readonly reconcilers: readonly Service[];
  readonly redis: RedisSetup;
  readonly postgres: PrivatePostgres;
  readonly databaseName: string;
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
  'redis-primary-kill': 0,
};

export const dataLossWeights: Partial<Record<FaultKind, number>> = { 'redis-flushall': 3, 'redis-restart-empty': 3 };

/**
 * On a Redis Cluster: a primary killed (its replica takes over) instead of the one Redis restarted;
 * no proxy in front of the nodes (a client follows the addresses the nodes announce), so no Redis
 * latency or stall; no data-loss faults.
 */
export const redisClusterWeights: Partial<Record<FaultKind, number>> = {
  'redis-primary-kill': 12,
  'redis-restart': 0,
  'redis-latency': 0,
  'redis-stall': 0,
  'redis-flushall': 0,
  'redis-restart-empty': 0,
};

/** After a primary is killed and started again, the cluster must be whole (replicas synced) within this. */
export const clusterRecoveryMs = 30_000;

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
    const weights = { ...faultWeights, ...(dataLoss ? dataLossWeights : {}), ...(cluster.redis.kind === 'cluster' ? redisClusterWeights : {}) };
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
        const server = this.single().server;
        const downMs = random.int(100, 1500);
        record('redis', `${downMs} ms down`);
        await server.kill();
        if (kind === 'redis-restart-empty') server.forgetPersistedData();
        await sleep(downMs);
        return server.start();
      }
      case 'redis-primary-kill': {
        const redis = this.onCluster();
        const primary = random.pick(await redis.primaries());
        const downMs = random.int(500, 3000);
        record(`redis :${primary.port}`, `primary killed, ${downMs} ms down, back as a replica`);
        await primary.kill();
        await sleep(downMs);
        await primary.start();
        // One failure at a time, as one replica per primary can survive: the next fault waits
        // until the old primary is back as a synced replica.
        if (!(await redis.whole(clusterRecoveryMs))) throw new Error(`the Redis Cluster was not whole again within ${clusterRecoveryMs} ms after killing :${primary.port}`);
        return;
      }
      case 'redis-client-kill':
        record('redis');
        await Promise.all(this.redisPorts().map((port) => this.withRedis(port, async (redis) => void (await redis.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')))));
        return;
      case 'redis-pause-writes': {
        const pauseMs = timeouts.redisCommandTimeoutMs + random.int(200, 1500);
        const port = cluster.redis.kind === 'single' ? cluster.redis.server.port : random.pick(await cluster.redis.cluster.primaries()).port;
        record(`redis :${port}`, `${pauseMs} ms`);
        await this.withRedis(port, async (redis) => void (await redis.call('CLIENT', 'PAUSE', String(pauseMs), 'WRITE')));
        return sleep(pauseMs);
      }
      case 'redis-flushall':
        record('redis');
        return this.withRedis(this.single().server.port, async (redis) => void (await redis.flushall()));
      case 'redis-latency':
      case 'postgres-latency': {
        const proxy = kind === 'redis-latency' ? this.single().proxy : cluster.postgresProxy;
        const latencyMs = random.int(20, 300);
        const lastsMs = random.int(1000, 4000);
        record(kind === 'redis-latency' ? 'redis' : 'postgres', `${latencyMs} ms for ${lastsMs} ms`);
        proxy.setLatency(latencyMs);
        await sleep(lastsMs);
        return proxy.setLatency(0);
      }
      case 'redis-stall':
      case 'postgres-stall': {
        const proxy = kind === 'redis-stall' ? this.single().proxy : cluster.postgresProxy;
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

  private single(): Extract<RedisSetup, { kind: 'single' }> {
    if (this.cluster.redis.kind !== 'single') throw new Error('this fault needs the single Redis (its weight is 0 on a cluster)');
    return this.cluster.redis;
  }

  private onCluster(): PrivateRedisCluster {
    if (this.cluster.redis.kind !== 'cluster') throw new Error('this fault needs a Redis Cluster (its weight is 0 on one Redis)');
    return this.cluster.redis.cluster;
  }

  private redisPorts(): number[] {
    return this.cluster.redis.kind === 'single' ? [this.cluster.redis.server.port] : this.cluster.redis.cluster.nodes.map((node) => node.port);
  }

  /** A direct connection to one Redis node (not through the proxy), so the nemesis itself is never faulted. */
  private async withRedis(port: number, action: (redis: Redis) => Promise<void>): Promise<void> {
    const redis = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
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
    if (this.cluster.redis.kind === 'single') {
      this.cluster.redis.proxy.setLatency(0);
      this.cluster.redis.proxy.setStalled(false);
    }
    this.cluster.postgresProxy.setLatency(0);
    this.cluster.postgresProxy.setStalled(false);
    for (const service of [...this.cluster.apis, ...this.cluster.workers, ...this.cluster.reconcilers]) service.resume();
  }
}
