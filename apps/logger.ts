// The process logger: JSON lines on stdout. Only apps/ log; lib/ returns or throws.
// Lines are buffered (up to logBufferBytes) and written asynchronously, so a request costs no
// write system call of its own; the buffer is flushed on exit and on a timer.
import pino, { type Logger } from 'pino';
import type { Config } from '../lib/config';

export const logBufferBytes = 4096;
export const logFlushIntervalMs = 250;

export function createLogger(config: Pick<Config, 'logLevel'>, name: string): Logger {
  const destination = pino.destination({ dest: 1, minLength: logBufferBytes, sync: false });
  const timer = setInterval(() => destination.flush(), logFlushIntervalMs);
  timer.unref();
  process.once('exit', () => destination.flushSync());
  return pino({ name, level: config.logLevel, base: { pid: process.pid } }, destination);
}
