// The one place that maps errors to HTTP statuses, and renders them as RFC 9457
// application/problem+json. Unknown errors become a 500 that leaks nothing but a request id.
import type { ErrorRequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { StockholdError, type ErrorCode } from '../../lib/errors';

export const problemTypeBase = 'https://stockhold.dev/problems/';

const statusOf: Readonly<Record<ErrorCode | 'internal_error', { status: number; title: string }>> = {
  validation_failed: { status: 400, title: 'The request is not valid' },
  idempotency_key_missing: { status: 400, title: 'Idempotency-Key header is required' },
  unauthorized: { status: 401, title: 'Authentication required' },
  forbidden: { status: 403, title: 'Not allowed for this API key' },
  route_not_found: { status: 404, title: 'No such route' },
  sku_not_found: { status: 404, title: 'Unknown SKU' },
  reservation_not_found: { status: 404, title: 'Unknown reservation' },
  job_not_found: { status: 404, title: 'Unknown job' },
  job_not_failed: { status: 409, title: 'Job is not failed' },
  insufficient_stock: { status: 409, title: 'Not enough stock' },
  stock_below_reserved: { status: 409, title: 'Stock would fall below what is reserved' },
  stripes_in_use: { status: 409, title: 'The stripes to drop still hold reserved units' },
  reservation_not_releasable: { status: 409, title: 'Reservation can no longer be released' },
  reservation_released: { status: 409, title: 'Reservation was released' },
  reservation_cancelled: { status: 409, title: 'Reservation was cancelled' },
  reservation_not_committed: { status: 409, title: 'Reservation is not committed' },
  reservation_rejected: { status: 409, title: 'Reservation was rejected by the ledger' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  reconcile_in_progress: { status: 409, title: 'A reconciliation run is in progress' },
  reservation_expired: { status: 410, title: 'Reservation expired' },
  idempotency_key_in_flight: { status: 409, title: 'A request with this Idempotency-Key is in progress' },
  payload_too_large: { status: 413, title: 'Request body too large' },
  unsupported_media_type: { status: 415, title: 'Content-Type must be application/json' },
  idempotency_key_reused: { status: 422, title: 'Idempotency-Key reused with a different request' },
  backend_unavailable: { status: 503, title: 'A backend is unavailable' },
  overloaded: { status: 503, title: 'The server is overloaded: retry shortly' },
  record_migration_pending: { status: 503, title: 'The reservation waits for the record migration of an upgrade' },
  rate_limited: { status: 429, title: 'Too many requests for this API client' },
  customer_limit_exceeded: { status: 409, title: 'The customer would hold more of this SKU than its limit' },
  too_many_active_holds: { status: 409, title: 'The customer holds as many reservations as allowed' },
  customer_id_required: { status: 400, title: 'This SKU is limited per customer: send customerId' },
  internal_error: { status: 500, title: 'Internal error' },
};

/** Every problem `code` the API can answer, for the OpenAPI document's enum. */
export const problemCodes = Object.keys(statusOf) as ReadonlyArray<ErrorCode | 'internal_error'>;

export function problemTitle(code: ErrorCode | 'internal_error'): string {
  return statusOf[code].title;
}

export function sendProblem(response: Response, code: ErrorCode | 'internal_error', detail: string, extensions: Readonly<Record<string, unknown>> = {}, retryAfterSeconds?: number): void {
  const { status, title } = statusOf[code];
  if (retryAfterSeconds !== undefined) response.setHeader('Retry-After', String(retryAfterSeconds));
  if (status === 401 && !response.hasHeader('WWW-Authenticate')) response.setHeader('WWW-Authenticate', 'Bearer realm="stockhold"');
  // Extensions first: RFC 9457's own members (status above all, a number) are never overwritten.
  const body = JSON.stringify({ ...extensions, type: `${problemTypeBase}${code}`, title, status, detail, code, instance: response.req.originalUrl ?? response.req.url, requestId: response.locals.requestId });
  // Node's own response API: a shed request on the fast lane has no Express methods (app.ts).
  response.statusCode = status;
  response.setHeader('Content-Type', 'application/problem+json; charset=utf-8');
  response.setHeader('Content-Length', Buffer.byteLength(body));
  response.end(body);
}

interface BodyParserError extends Error {
  type?: string;
  status?: number;
}

function fromBodyParser(error: BodyParserError): StockholdError | undefined {
  switch (error.type) {
    case 'entity.parse.failed':
      return new StockholdError('validation_failed', `The body is not valid JSON: ${error.message}`, { errors: [{ field: 'body', message: 'is not valid JSON' }] });
    case 'entity.too.large':
      return new StockholdError('payload_too_large', 'The body is larger than 64 KiB');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new StockholdError('unsupported_media_type', error.message);
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return new StockholdError('validation_failed', error.message, { errors: [{ field: 'body', message: error.message }] });
    default:
      return undefined;
  }
}

/** The router could not percent-decode a path parameter ("%", "%zz"): the client's URL, a 400. */
function fromRouter(error: unknown): StockholdError | undefined {
  if (!(error instanceof URIError)) return undefined;
  return new StockholdError('validation_failed', `The path is not valid percent-encoding: ${error.message}`, { errors: [{ field: 'path', message: 'is not valid percent-encoding' }] });
}

export function problemHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, request, response, _next) => {
    const known = error instanceof StockholdError ? error : (fromBodyParser(error as BodyParserError) ?? fromRouter(error));
    const context = { requestId: response.locals.requestId, method: request.method, path: request.originalUrl.split('?', 1)[0] };
    if (known === undefined) {
      logger.error({ ...context, err: error }, 'unhandled error');
      sendProblem(response, 'internal_error', `An unexpected error occurred; quote request id ${String(response.locals.requestId)}`);
      return;
    }
    const status = statusOf[known.code].status;
    // Expected while an upgrade's record migration has not run: a warning, not an error.
    if (known.code === 'record_migration_pending') logger.warn({ ...context, err: known }, known.message);
    else if (status >= 500) logger.error({ ...context, err: known, cause: known.cause }, known.message);
    else logger.info({ ...context, code: known.code, status }, known.message);
    sendProblem(response, known.code, known.message, known.extensions, known.retryAfterSeconds);
  };
}
