// The CLI's exit codes, one meaning each, so that scripts can tell the outcomes apart.
export const exitCodes = {
  ok: 0,
  /** The service answered a problem (its title, detail and code are on stderr). */
  problem: 1,
  /** The command line is wrong: unknown command or option, a value out of range, no API key. */
  usage: 2,
  /** Nothing answered: connection refused, unknown host, or no answer within the timeout. */
  unreachable: 3,
  /** A bug in the CLI itself (the stack trace is printed). */
  internal: 70,
  /** Ctrl-C while a single request was on its way. */
  interrupted: 130,
} as const;
