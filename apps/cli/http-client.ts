// The CLI's HTTP client for a running Stockhold: Bearer authentication, JSON in and out, one
// bounded timeout per request (connect, answer and body together), and the three ways a call can
// end that the exit codes tell apart: an answer, a problem the service answered, or no answer.
import { randomUUID } from 'node:crypto';
import { createStockholdClient, type StockholdClient } from '../../lib/client/client';

/** An RFC 9457 problem document as the service renders it (extensions kept as they come). */
export interface Problem {
  readonly type?: string;
  readonly title?: string;
  readonly status?: number;
  readonly detail?: string;
  readonly code?: string;
  readonly requestId?: string;
  readonly [extension: string]: unknown;
}

/** The service answered with an error status (exit code 1). */
export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
    readonly retryAfter: string | null,
  ) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
    this.name = 'ProblemError';
  }
}

/** Nothing answered: connection refused, unknown host, reset, or no answer in time (exit code 3). */
export class UnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnreachableError';
  }
}

/** The operator stopped the command (Ctrl-C) while a request was on its way. */
export class InterruptedError extends Error {
  constructor() {
    super('interrupted');
    this.name = 'InterruptedError';
  }
}

export interface ServiceAnswer<T> {
  readonly status: number;
  readonly body: T;
  /** Idempotent-Replayed: true, the stored answer of an earlier request with the same key. */
  readonly replayed: boolean;
  readonly retryAfter: string | null;
}

export interface CallOptions {
  readonly body?: unknown;
  readonly idempotencyKey?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface ClientSettings {
  readonly baseUrl: URL;
  readonly apiKey: string;
  readonly timeoutMs: number;
  /** Aborts every request in flight (Ctrl-C). */
  readonly signal?: AbortSignal;
}

/** A fresh key for a mutation, printed so that the operator can repeat the same change safely. */
export function newIdempotencyKey(): string {
  return `cli-${randomUUID()}`;
}

// Node's fetch reports transport failures as TypeError('fetch failed') with the socket error as
// its cause; all of them mean "nobody answered", which is exit code 3. The reason shown is the
// innermost cause's code (ECONNREFUSED, ENOTFOUND, …) or else its message ("bad port").
const causeDepthMax = 4;
function transportReasonOf(error: unknown): string {
  let reason = error instanceof Error ? error.message : String(error);
  let current: unknown = error;
  for (let depth = 0; depth < causeDepthMax && current !== null && typeof current === 'object'; depth += 1) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (typeof code === 'string') return code;
    if (typeof message === 'string' && message !== '') reason = message;
    current = (current as { cause?: unknown }).cause;
  }
  return reason;
}

/** What an openapi-fetch call resolves to (lib/client): the parsed body or problem, and the answer. */
interface TypedResult<T> {
  readonly data?: T;
  readonly error?: unknown;
  readonly response: Response;
}

export class ServiceClient {
  /**
   * The typed client generated from the OpenAPI document (lib/client), on this client's
   * transport: the same timeout, Ctrl-C, redirect refusal and error mapping as send().
   */
  readonly api: StockholdClient;

  constructor(private readonly settings: ClientSettings) {
    this.api = createStockholdClient({ baseUrl: this.baseUrl, apiKey: settings.apiKey, fetch: (request) => this.transport(request) });
  }

  /** A typed operation's answer as call() gives it: the body, or a ProblemError for an error status. */
  async typed<T>(call: Promise<TypedResult<T>>): Promise<ServiceAnswer<T>> {
    const { data, error, response } = await call;
    const retryAfter = response.headers.get('retry-after');
    if (response.status >= 400) {
      const problem = (error ?? {}) as Problem;
      throw new ProblemError(response.status, typeof problem === 'object' ? problem : { detail: String(problem) }, retryAfter);
    }
    return { status: response.status, body: data as T, replayed: response.headers.get('idempotent-replayed') === 'true', retryAfter };
  }

  /**
   * The typed client's fetch: the whole answer is read here, within the timeout, and handed on
   * as a fresh Response, so a stall in the body, a transport failure or an answer that is not
   * JSON ends the same way as with send().
   */
  private async transport(request: Request): Promise<Response> {
    const timeout = AbortSignal.timeout(this.settings.timeoutMs);
    const signal = this.settings.signal === undefined ? timeout : AbortSignal.any([timeout, this.settings.signal]);
    let response: Response;
    let text: string;
    try {
      response = await fetch(request, { signal, redirect: 'error' });
      text = await response.text();
    } catch (error) {
      throw this.transportError(error, request.method, request.url);
    }
    if (text !== '') this.parse(response.status, text, request.method, request.url);
    return new Response(text === '' ? null : text, { status: response.status, statusText: response.statusText, headers: response.headers });
  }

  get baseUrl(): string {
    return this.settings.baseUrl.origin + this.settings.baseUrl.pathname.replace(/\/$/, '');
  }

  /** Any answer, error statuses included; throws only when nothing answered (the load generator's raw path; commands use `api`). */
  async send<T = unknown>(method: string, path: string, options: CallOptions = {}): Promise<ServiceAnswer<T>> {
    const url = `${this.baseUrl}${path}`;
    const headers: Record<string, string> = { accept: 'application/json', authorization: `Bearer ${this.settings.apiKey}`, ...options.headers };
    if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    const timeout = AbortSignal.timeout(this.settings.timeoutMs);
    const signal = this.settings.signal === undefined ? timeout : AbortSignal.any([timeout, this.settings.signal]);
    let status: number;
    let text: string;
    let response: Response;
    try {
      response = await fetch(url, { method, headers, body, signal, redirect: 'error' });
      status = response.status;
      text = await response.text();
    } catch (error) {
      throw this.transportError(error, method, url);
    }
    return {
      status,
      body: this.parse(status, text, method, url) as T,
      replayed: response.headers.get('idempotent-replayed') === 'true',
      retryAfter: response.headers.get('retry-after'),
    };
  }

  private parse(status: number, text: string, method: string, url: string): unknown {
    if (text === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // Not the service (a proxy's error page, another program on the port): say what came back.
      const excerpt = text.length > 200 ? `${text.slice(0, 200)}…` : text;
      throw new ProblemError(status, { title: 'The answer is not JSON', status, detail: `${method} ${url} answered ${status}: ${excerpt.trim()}` }, null);
    }
  }

  private transportError(error: unknown, method: string, url: string): Error {
    if (this.settings.signal?.aborted === true) return new InterruptedError();
    const name = (error as { name?: unknown } | null)?.name;
    if (name === 'TimeoutError') return new UnreachableError(`${method} ${url}: no answer within ${this.settings.timeoutMs / 1000} s`);
    // fetch rejects with a TypeError for every network failure (and only for those).
    if (error instanceof TypeError) return new UnreachableError(`${method} ${url}: could not reach the service (${transportReasonOf(error)})`);
    return error instanceof Error ? error : new Error(String(error));
  }
}
