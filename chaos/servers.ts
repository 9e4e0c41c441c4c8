// Private Redis and Postgres servers that a test or the chaos run may stop and start at will, to
// make outages real (a refused connection, a killed server) instead of simulated. Each listens
// on its own port on 127.0.0.1 with its own data directory, and is removed when the run is done.
// Redis keeps nothing by default; with `appendOnly` it writes an AOF fsynced before every reply
// (appendfsync always), so a SIGKILL and restart keeps every acknowledged write.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, chownSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

const startWaitMs = 10_000;
const pollMs = 50;

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + startWaitMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  throw new Error(`${what} did not come up within ${startWaitMs} ms`);
}

export interface PrivateRedisOptions {
  /** Keep an AOF, fsynced before each reply, in a directory of its own. */
  readonly appendOnly?: boolean;
  /** More redis-server arguments (a cluster node's, say). */
  readonly extraArgs?: readonly string[];
}

export class PrivateRedis {
  private process: ChildProcess | undefined;
  private readonly directory: string;
  private constructor(readonly port: number, private readonly options: PrivateRedisOptions) {
    this.directory = mkdtempSync(path.join(tmpdir(), 'stockhold-redis-'));
  }

  static async start(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
    const server = new PrivateRedis(await freePort(), options);
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const persistence = this.options.appendOnly === true ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--dir', this.directory, '--logfile', path.join(this.directory, 'redis.log'), '--maxmemory-policy', 'noeviction', ...(this.options.extraArgs ?? [])];
    this.process = spawn('redis-server', args, { stdio: 'ignore' });
    await until(async () => {
      const probe = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        return (await probe.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        probe.disconnect();
      }
    }, `redis on ${this.port}`);
  }

  /** SIGKILL: Redis dies as in a crash, and with no persistence it comes back empty. */
  async kill(): Promise<void> {
    const child = this.process;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  /** SIGSTOP: the server stops answering (and replicating) with its connections open, until resume(). */
  pause(): void {
    this.process?.kill('SIGSTOP');
  }

  resume(): void {
    this.process?.kill('SIGCONT');
  }

  /** The last `lines` lines of the server's log (what it said about a failover it did not make). */
  logTail(lines: number): string {
    const file = path.join(this.directory, 'redis.log');
    return existsSync(file) ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : '(no log)';
  }

  /** Deletes what Redis persisted (the AOF), so that the next start comes back empty. */
  forgetPersistedData(): void {
    for (const entry of readdirSync(this.directory)) if (entry !== 'redis.log') rmSync(path.join(this.directory, entry), { recursive: true, force: true });
  }

  async remove(): Promise<void> {
    await this.kill();
    rmSync(this.directory, { recursive: true, force: true });
  }
}

/** Cluster nodes vote a silent primary out after this long; short, so a failover test is quick. */
export const clusterNodeTimeoutMs = 1000;

/**
 * A real Redis Cluster on loopback: `primaries` primaries with `replicasPerPrimary` replicas each,
 * every node its own redis-server, joined by `redis-cli --cluster create`. Nodes can be killed
 * (a failover) through `nodes`.
 */
export class PrivateRedisCluster {
  private constructor(readonly nodes: readonly PrivateRedis[], private readonly replicaCount: number) {}

  static async start(options: { readonly primaries?: number; readonly replicasPerPrimary?: number; readonly appendOnly?: boolean } = {}): Promise<PrivateRedisCluster> {
    const primaries = options.primaries ?? 3;
    const replicas = options.replicasPerPrimary ?? 1;
    const nodes: PrivateRedis[] = [];
    // A replica always stands for election however long its link was down (validity factor 0):
    // on a loaded test machine a replica that judged its data too old would leave its slots down.
    const extraArgs = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(clusterNodeTimeoutMs), '--cluster-replica-validity-factor', '0'];
    for (let index = 0; index < primaries * (1 + replicas); index += 1) nodes.push(await PrivateRedis.start({ extraArgs, ...(options.appendOnly === true ? { appendOnly: true } : {}) }));
    const cluster = new PrivateRedisCluster(nodes, primaries * replicas);
    try {
      execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { stdio: 'ignore' });
      await until(async () => (await Promise.all(nodes.map((node) => clusterStateOk(node.port)))).every(Boolean), 'the cluster');
      // Every primary's replicas online (synced), so WAIT can count them from the first write.
      await until(async () => (await Promise.all(nodes.map((node) => replicasOnline(node.port)))).reduce((sum, count) => sum + count, 0) >= primaries * replicas, 'the replicas');
    } catch (error) {
      await cluster.remove();
      throw error;
    }
    return cluster;
  }

  /** `host:port,host:port,…` as REDIS_CLUSTER_NODES takes it. */
  get seeds(): string {
    return this.nodes.map((node) => `127.0.0.1:${node.port}`).join(',');
  }

  /** The nodes that answer as primaries now (a killed one answers nothing and is not among them). */
  async primaries(): Promise<PrivateRedis[]> {
    const roles = await Promise.all(this.nodes.map(async (node) => ((await roleOf(node.port)) === 'master' ? node : undefined)));
    return roles.filter((node): node is PrivateRedis => node !== undefined);
  }

  /**
   * Waits until every node answers, the cluster reports its state ok and every replica is online
   * (synced with its primary), so one more primary can fail without losing a slot; false past
   * `timeoutMs`.
   */
  async whole(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const states = await Promise.all(this.nodes.map((node) => clusterStateOk(node.port)));
      const online = (await Promise.all(this.nodes.map((node) => replicasOnline(node.port)))).reduce((sum, count) => sum + count, 0);
      if (states.every(Boolean) && online >= this.replicaCount) return true;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return false;
  }

  async remove(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.remove()));
  }
}

/** Asks one node something on a connection of its own; `fallback` when it does not answer. */
async function probeNode<T>(port: number, ask: (probe: Redis) => Promise<T>, fallback: T): Promise<T> {
  const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return await ask(probe);
  } catch {
    return fallback;
  } finally {
    probe.disconnect();
  }
}

const roleOf = (port: number): Promise<string | undefined> => probeNode(port, async (probe) => String(((await probe.call('ROLE')) as unknown[])[0]), undefined);

const replicasOnline = (port: number): Promise<number> =>
  probeNode(port, async (probe) => (await probe.info('replication')).split('\n').filter((line) => /^slave\d+:.*state=online/.test(line)).length, 0);

const clusterStateOk = (port: number): Promise<boolean> => probeNode(port, async (probe) => /cluster_state:ok/.test(await probe.cluster('INFO')), false);

function postgresBinDirectory(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort() : [];
  const version = versions.at(-1);
  if (version === undefined) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  return path.join(root, version, 'bin');
}

/** Runs a Postgres binary, as the postgres user when we are root (initdb refuses root). */
function runPostgresTool(tool: string, args: string[]): void {
  const binary = path.join(postgresBinDirectory(), tool);
  if (process.getuid?.() === 0) execFileSync('runuser', ['-u', 'postgres', '--', binary, ...args], { stdio: 'ignore' });
  else execFileSync(binary, args, { stdio: 'ignore' });
}

export class PrivatePostgres {
  private constructor(readonly port: number, private readonly directory: string) {}

  static async start(): Promise<PrivatePostgres> {
    const directory = mkdtempSync(path.join(tmpdir(), 'stockhold-pg-'));
    if (process.getuid?.() === 0) {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      chownSync(directory, uid, gid);
    }
    runPostgresTool('initdb', ['-D', path.join(directory, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync']);
    const server = new PrivatePostgres(await freePort(), directory);
    await server.start();
    return server;
  }

  get dataDirectory(): string {
    return path.join(this.directory, 'data');
  }

  url(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<void> {
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${this.directory} -c fsync=off`;
    runPostgresTool('pg_ctl', ['-D', path.join(this.directory, 'data'), '-o', options, '-l', path.join(this.directory, 'log'), '-w', 'start']);
  }

  /** Immediate shutdown: connections drop at once, as in a crash. */
  async stop(): Promise<void> {
    runPostgresTool('pg_ctl', ['-D', path.join(this.directory, 'data'), '-m', 'immediate', '-w', 'stop']);
  }

  async remove(): Promise<void> {
    try {
      await this.stop();
    } catch {
      // Already stopped.
    }
    rmSync(this.directory, { recursive: true, force: true });
  }
}
