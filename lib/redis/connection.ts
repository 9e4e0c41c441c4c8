// The Redis connection for request traffic. It fails fast instead of queueing: with Redis down,
// a checkout must get a 503 within the command timeout, not hang. Unanswered commands are not
// re-sent after a reconnect, because a script may already have run: the client retries with
// its Idempotency-Key instead, which is safe.
import { Cluster, Redis, ReplyError } from 'ioredis';
import { errors } from '../errors';

export interface RedisOptions {
  readonly url: string;
  readonly commandTimeoutMs: number;
  readonly autoPipelining: boolean;
  /** A Redis Cluster's seeds: when given, the connection is a cluster client and `url` is ignored. */
  readonly clusterNodes?: readonly ClusterNode[] | null;
}

export const redisConnectTimeoutMs = 2000;
export const redisReconnectDelayMaxMs = 2000;

export function createRedis(options: RedisOptions): RedisClient {
  if (options.clusterNodes !== undefined && options.clusterNodes !== null) return createClusterClient(options.clusterNodes, options);
  const redis = new Redis(options.url, {
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs,
    connectTimeout: redisConnectTimeoutMs,
    enableAutoPipelining: options.autoPipelining,
    retryStrategy: (attempt) => Math.min(attempt * 100, redisReconnectDelayMaxMs),
    lazyConnect: true,
  });
  // ioredis emits 'error' on every failed reconnect; the readiness probe reports the outage.
  redis.on('error', () => undefined);
  return redis;
}

/**
 * A connection for a BullMQ producer or inspector (a Queue, not a Worker): fails fast like the
 * request connection, so adding or inspecting jobs with Redis down fails within the command
 * timeout instead of queueing. Connect it with `connectQuietly`.
 */
export function createQueueConnection(options: { readonly url: string; readonly commandTimeoutMs: number; readonly clusterNodes?: readonly ClusterNode[] | null }): RedisClient {
  if (options.clusterNodes !== undefined && options.clusterNodes !== null) return createClusterClient(options.clusterNodes, { ...options, autoPipelining: false });
  const connection = new Redis(options.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: redisConnectTimeoutMs,
    commandTimeout: options.commandTimeoutMs,
    lazyConnect: true,
  });
  connection.on('error', () => undefined);
  return connection;
}

/**
 * A BullMQ Worker's connection: it must retry forever (maxRetriesPerRequest: null) and queue
 * while reconnecting, as BullMQ requires; its own, without auto-pipelining.
 */
export function createWorkerConnection(options: { readonly url: string; readonly clusterNodes?: readonly ClusterNode[] | null }): RedisClient {
  const connection =
    options.clusterNodes !== undefined && options.clusterNodes !== null
      ? settleDelayedCommands(new Cluster([...options.clusterNodes], { scaleReads: 'master', redisOptions: { maxRetriesPerRequest: null } }))
      : new Redis(options.url, { maxRetriesPerRequest: null });
  connection.on('error', () => undefined);
  return connection;
}

/** Starts connecting a lazy connection; a Redis that is down now is reported by the commands. */
export async function connectQuietly(connection: RedisClient): Promise<void> {
  if (connection.status === 'wait') await connection.connect().catch(() => undefined);
}

/** A single Redis, or a Redis Cluster client: the scripts and commands used here run on both. */
export type RedisClient = Redis | Cluster;

export interface ClusterNode {
  readonly host: string;
  readonly port: number;
}

/**
 * The request connection to a Redis Cluster, with the same fail-fast rules as `createRedis`:
 * primaries only (a replica may lag a write the client was told about), no offline queue, no
 * re-sent commands. ioredis routes each command by its first key's slot and follows MOVED/ASK.
 *
 * Never auto-pipelined (`autoPipelining` is ignored here): ioredis re-sends a cluster pipeline
 * after MOVED only when every command in it got the same error and the others are read-only, so
 * an auto-pipeline mixing writes hands a raw `MOVED` to its callers during a failover (seen in
 * the failover test), and its retry path re-executes the pipeline without handling the promise
 * (the suspected source of the unhandled "Cluster isn't ready" rejection).
 */
export function createClusterClient(nodes: readonly ClusterNode[], options: Omit<RedisOptions, 'url'>): Cluster {
  const cluster = new Cluster([...nodes], {
    enableOfflineQueue: false,
    enableAutoPipelining: false,
    scaleReads: 'master',
    lazyConnect: true,
    clusterRetryStrategy: (attempt) => Math.min(attempt * 100, redisReconnectDelayMaxMs),
    redisOptions: {
      commandTimeout: options.commandTimeoutMs,
      connectTimeout: redisConnectTimeoutMs,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
    },
  });
  cluster.on('error', () => undefined);
  return settleDelayedCommands(cluster);
}

/**
 * ioredis's Cluster client delays a command across a slot refresh (after MOVED, CLUSTERDOWN, a
 * closed connection) and rejects it later, from a timer, when no node can take it ("Cluster isn't
 * ready and enableOfflineQueue options is false"). A command whose promise nobody holds by then
 * (seen in the cluster run: a command sent for BullMQ, from a queue on this connection, rejected
 * after the refresh, stack DelayQueue -> tryConnection) becomes an unhandled rejection, which
 * crashes Node: a cluster in trouble would take the process down instead of getting 503s. Every
 * command's promise gets a handler that does nothing; a caller awaiting it still sees the
 * rejection as before.
 */
function settleDelayedCommands(cluster: Cluster): Cluster {
  const send = cluster.sendCommand.bind(cluster);
  cluster.sendCommand = ((...args: Parameters<Cluster['sendCommand']>) => {
    const promise = send(...args);
    if (promise !== undefined && promise !== null && typeof (promise as Promise<unknown>).catch === 'function') (promise as Promise<unknown>).catch(() => undefined);
    return promise;
  }) as Cluster['sendCommand'];
  return cluster;
}

/** Waits for the connection to be ready, at most `timeoutMs`; false when it is not. */
export async function waitForRedis(redis: RedisClient, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return true;
  if (redis.status === 'wait') redis.connect().catch(() => undefined);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    redis.once('ready', onReady);
  });
}

// Replies that mean "Redis cannot serve now", as opposed to a bug in a script.
// MOVED and ASK reach a caller only when ioredis did not follow them (the node did not run the
// command): answered like a node that cannot serve now, so the client's retry goes to the new owner.
// MISCONF: a Redis refusing writes because it cannot persist; a script killed (SCRIPT/FUNCTION
// KILL) never wrote.
const unavailableReplies = ['LOADING', 'BUSY', 'READONLY', 'MASTERDOWN', 'CLUSTERDOWN', 'TRYAGAIN', 'OOM', 'NOREPLICAS', 'MOVED', 'ASK', 'MISCONF', 'ERR Script killed'];

/**
 * Runs Redis commands (and nothing else: wrap no domain logic in it), turning transport failures
 * and "cannot serve now" replies into 503 backend_unavailable. Other replies are script bugs.
 */
export async function withRedis<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof ReplyError) {
      const message = (error as Error).message;
      if (unavailableReplies.some((prefix) => message.startsWith(prefix))) throw errors.backendUnavailable('redis', error);
      throw error;
    }
    throw errors.backendUnavailable('redis', error);
  }
}
