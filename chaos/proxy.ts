// A small TCP proxy between the service processes and a database, in the manner of Toxiproxy:
// it forwards bytes both ways and, on command, delays them (added latency, order kept), holds
// them (a stall: nothing is delivered until it ends, so replies arrive after client timeouts),
// or resets every connection (a dropped network path mid-transaction). Faults apply to the
// connections open at the time and to new ones alike.
import { createServer, Socket, type Server } from 'node:net';

/** Bytes one direction of one connection may hold before its source is paused. */
export const queuedBytesMax = 16 * 1024 * 1024;

interface Chunk {
  readonly dueMs: number;
  readonly data: Buffer;
}

class Direction {
  private readonly queue: Chunk[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly proxy: FaultProxy, private readonly source: Socket, private readonly target: Socket) {
    source.on('data', (data: Buffer) => this.push(data));
    source.on('end', () => this.push(undefined));
  }

  private ended = false;

  private push(data: Buffer | undefined): void {
    if (data === undefined) {
      this.ended = true;
    } else {
      this.queue.push({ dueMs: Date.now() + this.proxy.latencyMs, data });
      this.queuedBytes += data.length;
      if (this.queuedBytes > queuedBytesMax) this.source.pause();
    }
    this.pump();
  }

  /** Delivers every chunk that is due, in order, unless the proxy is stalled. */
  pump(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.target.destroyed) return;
    if (this.proxy.stalled) return;
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0]!.dueMs <= now) {
      const chunk = this.queue.shift()!;
      this.queuedBytes -= chunk.data.length;
      this.target.write(chunk.data);
    }
    if (this.queuedBytes <= queuedBytesMax && this.source.isPaused()) this.source.resume();
    if (this.queue.length > 0) {
      this.timer = setTimeout(() => this.pump(), Math.max(1, this.queue[0]!.dueMs - now));
    } else if (this.ended) {
      this.target.end();
    }
  }

  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.queue.length = 0;
  }
}

interface Connection {
  readonly client: Socket;
  readonly upstream: Socket;
  readonly directions: readonly Direction[];
}

export class FaultProxy {
  latencyMs = 0;
  stalled = false;
  private server: Server | undefined;
  private readonly connections = new Set<Connection>();

  constructor(readonly listenPort: number, private readonly upstreamPort: number, private readonly host = '127.0.0.1') {}

  async start(): Promise<void> {
    this.server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.listenPort, this.host, () => resolve());
    });
  }

  private accept(client: Socket): void {
    const upstream = new Socket();
    const connection: Connection = {
      client,
      upstream,
      directions: [new Direction(this, client, upstream), new Direction(this, upstream, client)],
    };
    this.connections.add(connection);
    const close = () => {
      if (!this.connections.delete(connection)) return;
      for (const direction of connection.directions) direction.dispose();
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    upstream.connect(this.upstreamPort, this.host);
  }

  /** Adds `latencyMs` to every chunk from now on (0 removes it); order is kept. */
  setLatency(latencyMs: number): void {
    this.latencyMs = latencyMs;
    this.pumpAll();
  }

  /** Holds every byte in both directions until `setStalled(false)`. */
  setStalled(stalled: boolean): void {
    this.stalled = stalled;
    this.pumpAll();
  }

  /** Resets every open connection, as a broken network path does. */
  resetAll(): number {
    const open = [...this.connections];
    for (const connection of open) {
      connection.client.resetAndDestroy();
      connection.upstream.resetAndDestroy();
    }
    return open.length;
  }

  get openConnections(): number {
    return this.connections.size;
  }

  private pumpAll(): void {
    for (const connection of this.connections) for (const direction of connection.directions) direction.pump();
  }

  async stop(): Promise<void> {
    this.resetAll();
    await new Promise<void>((resolve) => (this.server === undefined ? resolve() : this.server.close(() => resolve())));
  }
}
