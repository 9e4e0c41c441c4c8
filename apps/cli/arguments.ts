// The CLI's bounds and its argument parsers. Every number an operator types is checked here,
// before anything is sent: a value out of range is a usage error (exit code 2), not a request.
import { InvalidArgumentError } from 'commander';

export const cliLimits = {
  urlDefault: 'http://127.0.0.1:3000',
  /** One request: connect, answer and body. A manual reconcile run answers when it is done. */
  requestTimeoutSecondsDefault: 30,
  requestTimeoutSecondsMax: 600,
  /** Rows one listing asks for (the service's own maximum for runs, events and jobs). */
  listLimitMax: 1000,
  runsLimitDefault: 20,
  eventsLimitDefault: 100,
  jobsLimitDefault: 50,
  /** `events --follow`: pause between polls once caught up. */
  followIntervalMsDefault: 1000,
  followIntervalMsMin: 100,
  followIntervalMsMax: 60_000,
  /** `events --follow` keeps going through this many failed polls in a row (a restart, a 503). */
  followFailuresMax: 60,
  /** `load`: the generator's own ceilings. */
  loadRateMax: 5000,
  loadDurationSecondsMax: 3600,
  loadConcurrencyDefault: 64,
  loadConcurrencyMax: 1024,
  loadQuantityMax: 1000,
  loadTtlSecondsMax: 86_400,
} as const;

/** A parser for a whole number from `min` to `max`, for commander options and arguments. */
export function wholeNumber(min: number, max: number): (raw: string) => number {
  return (raw) => {
    const value = /^-?\d{1,16}$/.test(raw.trim()) ? Number(raw) : Number.NaN;
    if (!(value >= min && value <= max)) throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
    return value;
  };
}

/** A parser for a decimal number from `min` to `max` (both included). */
export function decimalNumber(min: number, max: number, label = `a number from ${min} to ${max}`): (raw: string) => number {
  return (raw) => {
    const value = /^\d{1,9}(\.\d{1,9})?$/.test(raw.trim()) ? Number(raw) : Number.NaN;
    if (!(value >= min && value <= max)) throw new InvalidArgumentError(`must be ${label}`);
    return value;
  };
}

/** An Idempotency-Key as the service takes it: 1-255 visible ASCII characters. */
export function idempotencyKeyArgument(raw: string): string {
  if (!/^[\x21-\x7e]{1,255}$/.test(raw)) throw new InvalidArgumentError('must be 1-255 visible ASCII characters');
  return raw;
}

/** A stock delta: a whole number, not 0 (the service checks it against its own maximum). */
export function stockDelta(raw: string): number {
  const value = /^[+-]?\d{1,16}$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value === 0) throw new InvalidArgumentError('must be a whole number other than 0 (+ receipt, - shrinkage)');
  return value;
}

/** A command line the CLI cannot act on (exit code 2), found after commander's own checks. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
