// What the CLI prints and where: results on stdout (aligned tables, or JSON with --json),
// problems, warnings and progress on stderr. Nothing here writes to the process directly; the
// streams come in through CliIo, so tests run the CLI in-process.
import type { Problem } from './http-client';

export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Aborted when the operator presses Ctrl-C: `events --follow` and `load` stop cleanly. */
  readonly signal?: AbortSignal;
  /** Whether stderr is a terminal: `load` then draws a progress bar instead of a line a second. */
  readonly stderrIsTTY?: boolean;
}

export interface Column {
  readonly header: string;
  readonly align?: 'left' | 'right';
}

/** Cells longer than this are cut in tables (--json always has the whole value). */
export const cellLengthMax = 100;

export function cell(value: unknown): string {
  if (value === null || value === undefined) return '-';
  const text = typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
  const oneLine = text.replace(/\s+/g, ' ');
  return oneLine.length > cellLengthMax ? `${oneLine.slice(0, cellLengthMax - 1)}…` : oneLine;
}

/** Columns padded to their widest cell, two spaces apart; numbers right-aligned. */
export function renderTable(columns: readonly Column[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = columns.map((column, index) => Math.max(column.header.length, ...rows.map((row) => (row[index] ?? '').length)));
  const line = (cells: readonly string[]) =>
    columns
      .map((column, index) => {
        const text = cells[index] ?? '';
        const width = widths[index] ?? 0;
        return column.align === 'right' ? text.padStart(width) : text.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  return [line(columns.map((column) => column.header)), ...rows.map(line)].join('\n') + '\n';
}

/** Label-value lines ("label  value"), labels padded to the longest. */
export function renderPairs(pairs: ReadonlyArray<readonly [string, unknown]>): string {
  const width = Math.max(0, ...pairs.map(([label]) => label.length));
  return pairs.map(([label, value]) => `${label.padEnd(width)}  ${cell(value)}`.trimEnd()).join('\n') + '\n';
}

export function isoTime(milliseconds: number | null | undefined): string {
  return milliseconds === null || milliseconds === undefined ? '-' : new Date(milliseconds).toISOString();
}

/** Field problems of a validation problem printed, at most (--json has them all). */
export const fieldProblemsShownMax = 10;

/** A problem the service answered, for a person: title, status and code, then the detail. */
export function describeProblem(status: number, problem: Problem, retryAfter: string | null): string {
  const lines = [`stockhold: ${problem.title ?? 'Request failed'} (${status}${problem.code === undefined ? '' : ` ${problem.code}`})`];
  if (problem.detail !== undefined && problem.detail !== problem.title) lines.push(`  ${problem.detail}`);
  const fieldProblems = Array.isArray(problem.errors) ? (problem.errors as Array<{ field?: unknown; message?: unknown }>) : [];
  for (const fieldProblem of fieldProblems.slice(0, fieldProblemsShownMax)) {
    const text = `${String(fieldProblem.field)}: ${String(fieldProblem.message)}`;
    // A validation problem's detail usually lists them already.
    if (problem.detail === undefined || !problem.detail.includes(text)) lines.push(`  - ${text}`);
  }
  if (retryAfter !== null) lines.push(`  retry after ${retryAfter} s`);
  if (problem.requestId !== undefined) lines.push(`  request id ${problem.requestId}`);
  return lines.join('\n') + '\n';
}

/** Writes results as tables or as JSON, as the global --json asks. */
export class Printer {
  constructor(
    private readonly io: CliIo,
    readonly json: boolean,
  ) {}

  /** One JSON document, indented (a command's whole result). */
  document(value: unknown): void {
    this.io.stdout(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** One JSON value on one line (a stream: `events --follow --json`). */
  line(value: unknown): void {
    this.io.stdout(`${JSON.stringify(value)}\n`);
  }

  text(text: string): void {
    this.io.stdout(text.endsWith('\n') ? text : `${text}\n`);
  }

  /** A note for the person at the terminal, on stderr so that stdout stays the result. */
  note(text: string): void {
    this.io.stderr(text.endsWith('\n') ? text : `${text}\n`);
  }
}
