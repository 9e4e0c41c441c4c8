// The process logger: JSON lines on stdout. Only apps/ log; lib/ returns or throws.
import pino, { type Logger } from 'pino';
import type { Config } from '../lib/config';

export function createLogger(config: Pick<Config, 'logLevel'>, name: string): Logger {
  return pino({ name, level: config.logLevel, base: { pid: process.pid } });
}
