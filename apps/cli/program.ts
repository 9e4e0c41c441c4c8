// The operator CLI (`stockhold <command>`): the commander program, the global options, and the
// one place that turns how a command ended into an exit code. runCli never touches the process
// (no process.exit, no process.env): main.ts hands it the arguments, environment and streams.
import { Command, CommanderError, Option } from 'commander';
import { cliLimits, UsageError, wholeNumber } from './arguments';
import { registerEvents } from './commands/events';
import { registerJobs } from './commands/jobs';
import { registerLoad } from './commands/load';
import { registerReconcile } from './commands/reconcile';
import { registerReservation } from './commands/reservation';
import { registerStock } from './commands/stock';
import { exitCodes } from './exit-codes';
import { InterruptedError, ProblemError, ServiceClient, UnreachableError } from './http-client';
import { describeProblem, Printer, type CliIo } from './output';

export type { CliIo } from './output';

export { exitCodes };

interface GlobalOptions {
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

function buildProgram(io: CliIo): { program: Command; context: CommandContext } {
  const program = new Command('stockhold');
  // Settings first: subcommands copy them when they are created.
  program
    .description('Operate a running Stockhold service over its HTTP API.')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr, outputError: (text, write) => write(text) })
    .showHelpAfterError('(add --help for usage)')
    .option('--url <url>', `service URL (env STOCKHOLD_URL, default ${cliLimits.urlDefault})`)
    .option('--api-key <secret>', 'API key sent as a Bearer token (env STOCKHOLD_API_KEY; the env keeps it out of ps)')
    .option('--json', 'print machine-readable JSON instead of tables')
    .addOption(
      new Option('--timeout <seconds>', `give up on a request after this long (1-${cliLimits.requestTimeoutSecondsMax})`)
        .argParser(wholeNumber(1, cliLimits.requestTimeoutSecondsMax))
        .default(cliLimits.requestTimeoutSecondsDefault),
    );
  const context = new CommandContext(io, program);
  registerStock(program, context);
  registerReservation(program, context);
  registerReconcile(program, context);
  registerEvents(program, context);
  registerJobs(program, context);
  registerLoad(program, context);
  return { program, context };
}

function reportFailure(error: unknown, context: CommandContext): number {
  const { io } = context;
  if (error instanceof CommanderError) {
    // Commander has printed its message already. --help asked for is success; help shown
    // because a command was missing is a usage error.
    return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? exitCodes.ok : exitCodes.usage;
  }
  if (error instanceof UsageError) {
    io.stderr(`stockhold: ${error.message}\n(add --help for usage)\n`);
    return exitCodes.usage;
  }
  if (error instanceof ProblemError) {
    if (context.json) io.stderr(`${JSON.stringify({ status: error.status, ...error.problem })}\n`);
    else io.stderr(describeProblem(error.status, error.problem, error.retryAfter));
    return exitCodes.problem;
  }
  if (error instanceof UnreachableError) {
    io.stderr(`stockhold: ${error.message}\n`);
    return exitCodes.unreachable;
  }
  if (error instanceof InterruptedError) {
    io.stderr('stockhold: interrupted\n');
    return exitCodes.interrupted;
  }
  io.stderr(`stockhold: internal error (a bug in the CLI): ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return exitCodes.internal;
}

/**
 * Runs one command line (without "node" and the script: `["stock", "get", "SKU-1"]`) and
 * answers its exit code. Each call builds a fresh program, so calls are independent.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const { program, context } = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return context.exitCode;
  } catch (error) {
    return reportFailure(error, context);
  }
}
