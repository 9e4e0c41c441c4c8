// The chaos clients' HTTP: one keep-alive agent per API process, a timeout on every attempt, and
// the retry policy of a well-behaved client: a transient failure (no response, 5xx, or 409
// idempotency_key_in_flight) is retried with the same request and Idempotency-Key, honouring
// Retry-After, up to a bounded number of attempts; whatever is still unanswered is unknown.
import { Agent, request as httpRequest } from 'node:http';
import type { Attempt, Outcome } from './history';

export interface ApiEndpoint {
  readonly port: number;
  readonly agent: Agent;
}

export function endpoint(port: number): ApiEndpoint {
  return { port, agent: new Agent({ keepAlive: true, maxSockets: 64 }) };
}

export interface Call {
  readonly method: string;
  readonly path: string;
  readonly secret: string;
  readonly body?: unknown;
  readonly idempotencyKey?: string;
  readonly headers?: Record<string, string>;
}

export interface Reply {
  readonly status: number | null;
  readonly body: any;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly error?: string;
}

export const attemptTimeoutMs = 3000;
export const attemptsMax = 12;
export const retryBudgetMs = 25_000;
export const retryAfterCapMs = 2000;
/** A response body larger than this is cut (no route answers anything near it). */
export const responseBytesMax = 1024 * 1024;

export function send(api: ApiEndpoint, call: Call, timeoutMs = attemptTimeoutMs): Promise<Reply> {
  const payload = call.body === undefined ? undefined : JSON.stringify(call.body);
  const headers: Record<string, string> = { authorization: `Bearer ${call.secret}`, ...call.headers };
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  if (call.idempotencyKey !== undefined) headers['idempotency-key'] = call.idempotencyKey;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (reply: Reply) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(reply);
    };
    const request = httpRequest({ host: '127.0.0.1', port: api.port, method: call.method, path: call.path, headers, agent: api.agent }, (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= responseBytesMax) chunks.push(chunk);
      });
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = text === '' ? undefined : JSON.parse(text);
        } catch {
          body = text;
        }
        finish({ status: response.statusCode ?? null, body, headers: response.headers });
      });
      response.on('error', (error) => finish({ status: null, body: undefined, headers: {}, error: error.message }));
    });
    const timer = setTimeout(() => {
      request.destroy(new Error('timeout'));
      finish({ status: null, body: undefined, headers: {}, error: 'timeout' });
    }, timeoutMs);
    request.on('error', (error: NodeJS.ErrnoException) => finish({ status: null, body: undefined, headers: {}, error: error.code ?? error.message }));
    request.end(payload);
  });
}

export function isTransient(reply: Reply): boolean {
  if (reply.status === null || reply.status >= 500) return true;
  return reply.status === 409 && reply.body?.code === 'idempotency_key_in_flight';
}

export function outcomeOf(reply: Reply): Outcome {
  if (reply.status !== null && reply.status >= 200 && reply.status < 300) return 'ok';
  return isTransient(reply) ? 'unknown' : 'fail';
}

export function attemptOf(reply: Reply, api: number, startMs: number): Attempt {
  const retryAfter = reply.headers['retry-after'];
  return {
    startMs,
    endMs: Date.now(),
    api,
    status: reply.status,
    ...(typeof reply.body?.code === 'string' ? { code: reply.body.code as string } : {}),
    ...(reply.error === undefined ? {} : { error: reply.error }),
    ...(typeof retryAfter === 'string' ? { retryAfter } : {}),
  };
}

/** How long to wait before the next attempt: the server's Retry-After (capped) or a short backoff. */
export function retryDelayMs(reply: Reply, attempt: number, jitter: number): number {
  const header = reply.headers['retry-after'];
  const seconds = typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : undefined;
  if (seconds !== undefined) return Math.min(seconds * 1000, retryAfterCapMs) * (0.5 + jitter / 2);
  return Math.min(50 * 2 ** attempt, 1000) * (0.5 + jitter);
}
