// Proves the chaos run's TCP fault proxy does what the nemesis relies on, over real sockets: it
// forwards both ways, added latency delays bytes but keeps their order, a stall delivers nothing
// until it ends (then everything, in order), and a reset drops every open connection.
import { createServer, Socket, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultProxy } from '../chaos/proxy';
import { freePort } from '../chaos/servers';

let echo: Server;
let proxy: FaultProxy;

beforeAll(async () => {
  echo = createServer((socket) => {
    // The proxy's reset reaches the echo side too: its sockets see ECONNRESET.
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  const echoPort = await freePort();
  await new Promise<void>((resolve) => echo.listen(echoPort, '127.0.0.1', () => resolve()));
  proxy = new FaultProxy(await freePort(), echoPort);
  await proxy.start();
});

afterAll(async () => {
  await proxy.stop();
  await new Promise<void>((resolve) => echo.close(() => resolve()));
});

async function connect(): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  const socket = new Socket();
  let data = '';
  socket.on('data', (chunk) => (data += chunk.toString()));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.connect(proxy.listenPort, '127.0.0.1', () => resolve()));
  return { socket, received: () => data, closed };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !check()) await sleep(5);
  return check();
}

describe('fault proxy', () => {
  it('forwards both ways', async () => {
    const { socket, received } = await connect();
    socket.write('hello');
    expect(await until(() => received() === 'hello', 2000)).toBe(true);
    socket.destroy();
  });

  it('adds latency and keeps the order of bytes', async () => {
    const { socket, received } = await connect();
    proxy.setLatency(150);
    const sentAt = Date.now();
    for (let index = 0; index < 20; index += 1) socket.write(`${index},`);
    expect(await until(() => received().split(',').length > 20, 3000)).toBe(true);
    // The bytes went through the proxy twice (there and back): at least twice the latency.
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(290);
    expect(received()).toBe(Array.from({ length: 20 }, (_, index) => `${index},`).join(''));
    proxy.setLatency(0);
    socket.destroy();
  });

  it('delivers nothing during a stall, then everything in order', async () => {
    const { socket, received } = await connect();
    proxy.setStalled(true);
    socket.write('a');
    socket.write('b');
    await sleep(300);
    expect(received()).toBe('');
    proxy.setStalled(false);
    expect(await until(() => received() === 'ab', 2000)).toBe(true);
    socket.destroy();
  });

  it('resets every open connection', async () => {
    const first = await connect();
    const second = await connect();
    expect(await until(() => proxy.openConnections >= 2, 1000)).toBe(true);
    expect(proxy.resetAll()).toBeGreaterThanOrEqual(2);
    await Promise.all([first.closed, second.closed]);
    expect(first.socket.destroyed && second.socket.destroyed).toBe(true);
  });
});
