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
import { CommandContext } from './context';
import { InterruptedError, ProblemError, UnreachableError } from './http-client';
import { describeProblem, type CliIo } from './output';

export type { CliIo } from './output';

export { exitCodes };

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
