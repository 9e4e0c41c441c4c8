// What every command gets (the streams, the printer, a client built from the global options),
// in a file of its own so the commands and the program that registers them import it one way.
import type { Command } from 'commander';
import { cliLimits, UsageError } from './arguments';
import { exitCodes } from './exit-codes';
import { ServiceClient } from './http-client';
import { Printer, type CliIo } from './output';

export interface GlobalOptions {
  readonly url?: string;
  readonly apiKey?: string;
  readonly json?: boolean;
  readonly timeout: number;
}

/** What every command gets: the streams, the printer, and a client built from the globals. */
export class CommandContext {
  /** A command that finished but not entirely well (`jobs retry --all` with a refusal) sets 1. */
  exitCode: number = exitCodes.ok;

  constructor(
    readonly io: CliIo,
    private readonly program: Command,
  ) {}

  private get globals(): GlobalOptions {
    return this.program.opts<GlobalOptions>();
  }

  get json(): boolean {
    return this.globals.json === true;
  }

  get printer(): Printer {
    return new Printer(this.io, this.json);
  }

  /** A client from --url/--api-key/--timeout or the environment; `interruptible: false` keeps Ctrl-C from aborting its requests. */
  client(options: { interruptible?: boolean } = {}): ServiceClient {
    const { url, apiKey, timeout } = this.globals;
    const rawUrl = nonEmpty(url) ?? nonEmpty(this.io.env.STOCKHOLD_URL) ?? cliLimits.urlDefault;
    let baseUrl: URL;
    try {
      baseUrl = new URL(rawUrl);
    } catch {
      throw new UsageError(`--url / STOCKHOLD_URL: "${rawUrl}" is not a URL`);
    }
    if (baseUrl.protocol !== 'http:' && baseUrl.protocol !== 'https:') throw new UsageError(`--url / STOCKHOLD_URL: "${rawUrl}" is not an http(s) URL`);
    const key = nonEmpty(apiKey) ?? nonEmpty(this.io.env.STOCKHOLD_API_KEY);
    if (key === undefined) throw new UsageError('no API key: set STOCKHOLD_API_KEY or pass --api-key');
    return new ServiceClient({ baseUrl, apiKey: key, timeoutMs: timeout * 1000, signal: options.interruptible === false ? undefined : this.io.signal });
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

