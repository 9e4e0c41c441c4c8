// `stockhold events [--after id] [--limit n] [--follow]`: the events outbox, oldest first.
// --follow polls (a page at a time; a pause of --interval once caught up) until Ctrl-C, always
// resuming after the last id it printed, and rides out a restarting service for a bounded
// number of polls in a row.
import type { Command } from 'commander';
import type { StockholdEvent } from '../../../lib/events/outbox';
import { abortableSleep } from '../abortable-sleep';
import { cliLimits, wholeNumber } from '../arguments';
import { InterruptedError, ProblemError, UnreachableError, type ServiceClient } from '../http-client';
import type { CommandContext } from '../context';

export interface EventsPage {
  readonly events: StockholdEvent[];
  readonly next: number;
}

interface EventsOptions {
  readonly after: number;
  readonly limit: number;
  readonly follow?: boolean;
  readonly interval: number;
}

/** The longest event type ("reservation.cancelled"), so that streamed lines line up. */
const typeWidth = 21;
const idWidth = 8;

export function eventLine(event: StockholdEvent): string {
  return `${String(event.id).padEnd(idWidth)}  ${event.occurredAt}  ${event.type.padEnd(typeWidth)}  ${JSON.stringify(event.data)}`;
}

export const eventsHeader = `${'id'.padEnd(idWidth)}  ${'occurredAt'.padEnd(24)}  ${'type'.padEnd(typeWidth)}  data`;

const page = (client: ServiceClient, after: number, limit: number) => client.typed<EventsPage>(client.api.GET('/v1/events', { params: { query: { after, limit } } }));

async function printOnce(context: CommandContext, client: ServiceClient, options: EventsOptions): Promise<void> {
  const { body } = await page(client, options.after, options.limit);
  const printer = context.printer;
  if (printer.json) {
    printer.document(body);
    return;
  }
  if (body.events.length === 0) {
    printer.text(`no events after ${options.after}`);
    return;
  }
  printer.text(eventsHeader);
  for (const event of body.events) printer.text(eventLine(event));
  if (body.events.length === options.limit) printer.note(`more may follow: --after ${body.next}`);
}

/** Worth polling again: nothing answered, or the service answered that it cannot serve now. */
function transient(error: unknown): error is UnreachableError | ProblemError {
  return error instanceof UnreachableError || (error instanceof ProblemError && error.status >= 500);
}

async function follow(context: CommandContext, client: ServiceClient, options: EventsOptions): Promise<void> {
  const { io, printer } = context;
  const signal = io.signal;
  let after = options.after;
  let failuresInARow = 0;
  if (!printer.json) printer.text(eventsHeader);
  while (signal?.aborted !== true) {
    let fetched: EventsPage;
    try {
      fetched = (await page(client, after, options.limit)).body;
      failuresInARow = 0;
    } catch (error) {
      if (error instanceof InterruptedError) break;
      if (!transient(error) || failuresInARow + 1 >= cliLimits.followFailuresMax) throw error;
      failuresInARow += 1;
      printer.note(`events: ${error.message}; polling again in ${options.interval} ms (${failuresInARow}/${cliLimits.followFailuresMax})`);
      await abortableSleep(options.interval, signal);
      continue;
    }
    for (const event of fetched.events) {
      if (printer.json) printer.line(event);
      else printer.text(eventLine(event));
      after = event.id;
    }
    // A full page means more is waiting: fetch it at once; otherwise wait for news.
    if (fetched.events.length < options.limit) await abortableSleep(options.interval, signal);
  }
}

export function registerEvents(program: Command, context: CommandContext): void {
  program
    .command('events')
    .description('the events outbox, oldest first (fulfillment or admin key)')
    .option('--after <id>', 'only events after this id', wholeNumber(0, Number.MAX_SAFE_INTEGER), 0)
    .option('--limit <n>', `events per request (1-${cliLimits.listLimitMax})`, wholeNumber(1, cliLimits.listLimitMax), cliLimits.eventsLimitDefault)
    .option('--follow', 'keep polling and print new events as they come, until Ctrl-C')
    .option(
      '--interval <ms>',
      `--follow: pause between polls once caught up (${cliLimits.followIntervalMsMin}-${cliLimits.followIntervalMsMax})`,
      wholeNumber(cliLimits.followIntervalMsMin, cliLimits.followIntervalMsMax),
      cliLimits.followIntervalMsDefault,
    )
    .action(async (options: EventsOptions) => {
      const client = context.client();
      if (options.follow === true) await follow(context, client, options);
      else await printOnce(context, client, options);
    });
}
