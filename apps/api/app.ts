// The Express application: request ids and access logging, health probes, JSON parsing with a
// size bound, authentication, the v1 routes, and problem+json for everything that goes wrong.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import express, { type ErrorRequestHandler, type Express, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';
import type { Counter, Histogram } from 'prom-client';
import { errors, StockholdError } from '../../lib/errors';
import { checkReadiness } from '../../lib/readiness';
import type { Stockhold } from '../../lib/stockhold';
import type { Metrics } from '../../lib/metrics/metrics';
import { adminRoutes } from './admin-routes';
import { Admission, shedRetryAfterSeconds, type ShedReason } from './admission';
import { authentication, requireScope } from './auth';
import { jsonBody } from './json-body';
import { apiDocs, apiDocsPath } from './api-docs';
import { openApiDocument } from './openapi';
import { problemHandler, problemTitle, problemTypeBase, sendProblem } from './problem';
import { rateLimit } from './rate-limit';
import { queueDashboard, queueDashboardPath } from './queue-dashboard';
import { createReservationHandler, v1Routes } from './routes';
import { bodyBytesMax } from './schemas';

const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;

interface RouteLayer {
  readonly route?: { readonly path: string; readonly methods: Readonly<Record<string, boolean>> };
}

/**
 * The methods of every route, read from the routers themselves (so it cannot drift from them):
 * a known path asked with another method answers 405 with Allow.
 */
export function routeMethodsOf(mounted: ReadonlyArray<{ readonly prefix: string; readonly stack: readonly RouteLayer[] }>): (path: string) => readonly string[] | undefined {
  const table = new Map<string, { pattern: RegExp; methods: Set<string> }>();
  for (const { prefix, stack } of mounted) {
    for (const layer of stack) {
      if (layer.route === undefined) continue;
      const path = prefix + layer.route.path;
      const pattern = new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z_]+/g, '[^/]+')}$`);
      const entry = table.get(path) ?? { pattern, methods: new Set<string>() };
      for (const method of Object.keys(layer.route.methods)) entry.methods.add(method.toUpperCase());
      table.set(path, entry);
    }
  }
  const routes = [...table.values()];
  return (path) => {
    const found = routes.find((route) => route.pattern.test(path));
    return found === undefined ? undefined : [...found.methods];
  };
}
// Request ids need to be unique, not secret: a per-process random stem and a counter.
const requestIdStem = randomBytes(6).toString('hex');
let requestCounter = 0;

/** The route template a request matched ("/v1/reservations/:id"), for bounded metric labels. */
function routeTemplateOf(request: Request, response: Response): string {
  if (typeof response.locals.route === 'string') return response.locals.route;
  const route = request.route as { path?: unknown } | undefined;
  if (route !== undefined && typeof route.path === 'string') return request.baseUrl + route.path;
  if (request.baseUrl === queueDashboardPath) return `${queueDashboardPath}/*`;
  return 'unmatched';
}

/** A shed request's problem document up to its instance and request id, by reason (sendProblem's fields and order). */
const shedBodies: Readonly<Record<ShedReason, string>> = {
  in_flight: shedBody('in_flight', 'requests in flight'),
  event_loop_delay: shedBody('event_loop_delay', 'event-loop delay'),
};

function shedBody(reason: ShedReason, bound: string): string {
  const whole = JSON.stringify({ reason, type: `${problemTypeBase}overloaded`, title: problemTitle('overloaded'), status: 503, detail: `The server is at its bound (${bound}); retry after ${shedRetryAfterSeconds} s`, code: 'overloaded' });
  return whole.slice(0, -1);
}

/** The status logged and counted for a request whose caller closed before its answer was written. */
export const clientClosedStatus = 499;

/**
 * Admitted requests not yet released, per connection. A response's 'close' releases its slot; a
 * connection's 'close' releases every slot still held on it, so requests pipelined behind one
 * that never got the socket (Node 20 emits no 'close' for their responses when the connection
 * resets) do not hold slots for ever. One listener per connection, none per request.
 */
const slotsHeld = Symbol('stockhold.slotsHeld');
type SlotSocket = Socket & { [slotsHeld]?: number };

function holdSlot(admission: Admission, socket: SlotSocket): void {
  if (socket[slotsHeld] === undefined) {
    socket[slotsHeld] = 0;
    socket.once('close', () => {
      for (let held = socket[slotsHeld] ?? 0; held > 0; held -= 1) admission.release();
      socket[slotsHeld] = 0;
    });
  }
  socket[slotsHeld] += 1;
}

function releaseSlot(admission: Admission, socket: SlotSocket): void {
  // Zero: the connection's 'close' released it already.
  if ((socket[slotsHeld] ?? 0) === 0) return;
  socket[slotsHeld]! -= 1;
  admission.release();
}

/** A shed request's unread body up to this size is drained to keep its connection; a larger (or chunked) one closes it. */
export const shedDrainBytesMax = 16 * 1024;

/** Never shed: an overloaded process must still answer its probes and its scrape. */
const neverShed = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Admission, request id, access log line and HTTP metrics, in one 'close' listener per request.
 * A request beyond the admission's bounds is answered 503 `overloaded` here, before its body is
 * read; it is counted (stockhold_http_shed_total) and summed into one log line a second, not
 * logged one by one (a burst sheds thousands a second). The id is the caller's X-Request-Id when
 * it is well formed; it travels on into the commit job and the webhook delivery, so one
 * reservation can be followed across processes.
 */
function requestObservation(logger: Logger, metrics: Metrics | null, admission: Admission): RequestHandler {
  const requestCounters = new Map<string, Counter.Internal>();
  const durations = new Map<string, Histogram.Internal<'method' | 'route'>>();
  let shedSinceLog = 0;
  let shedLoggedAt = 0;
  const noCount = { inc: () => undefined };
  const shedCounters = {
    in_flight: metrics?.httpShed.labels('in_flight') ?? noCount,
    event_loop_delay: metrics?.httpShed.labels('event_loop_delay') ?? noCount,
  };
  return (request, response, next) => {
    const given = request.headers['x-request-id'];
    requestCounter += 1;
    const requestId = typeof given === 'string' && requestIdPattern.test(given) ? given : `${requestIdStem}-${requestCounter.toString(36)}`;
    response.locals.requestId = requestId;
    response.setHeader('X-Request-Id', requestId);
    const exempt = neverShed.has(pathOf(request.url));
    const shed = exempt ? undefined : admission.admit();
    if (shed !== undefined) {
      shedCounters[shed].inc();
      shedSinceLog += 1;
      const now = Date.now();
      if (now - shedLoggedAt >= 1000) {
        logger.warn({ shed: shedSinceLog, reason: shed, inFlight: admission.inFlight, eventLoopDelayMs: Math.round(admission.eventLoopDelayMs) }, 'overloaded: shedding requests');
        shedSinceLog = 0;
        shedLoggedAt = now;
      }
      // The cheapest answer the contract allows: every shed request costs the loop that is
      // already behind (docs/design.md, "Overload"); the body is built from fixed parts.
      const body = `${shedBodies[shed]},"instance":${JSON.stringify(request.url)},"requestId":${JSON.stringify(requestId)}}`;
      const headers: Record<string, string | number> = { 'Content-Type': 'application/problem+json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'Retry-After': shedRetryAfterSeconds };
      // Node reads and drops an unread body to keep the connection: not a large or chunked one,
      // on a loop that is already behind. The caller reconnects for its retry.
      if (request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > shedDrainBytesMax) headers.Connection = 'close';
      response.writeHead(503, headers);
      response.end(body);
      return;
    }
    if (!exempt) holdSlot(admission, request.socket);
    const startedAt = process.hrtime.bigint();
    response.once('close', () => {
      if (!exempt) releaseSlot(admission, request.socket);
      const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
      // Closed before the answer was written: the caller went away (499, as nginx counts it).
      const status = response.writableFinished ? response.statusCode : clientClosedStatus;
      if (metrics !== null) {
        const route = routeTemplateOf(request, response);
        const method = request.method;
        const label = `${method} ${route} ${status}`;
        let counter = requestCounters.get(label);
        if (counter === undefined) {
          counter = metrics.httpRequests.labels(method, route, statusLabel(status));
          requestCounters.set(label, counter);
        }
        counter.inc();
        const durationLabel = `${method} ${route}`;
        let duration = durations.get(durationLabel);
        if (duration === undefined) {
          duration = metrics.httpDuration.labels(method, route);
          durations.set(durationLabel, duration);
        }
        duration.observe(seconds);
      }
      const entry = { requestId, method: request.method, path: pathOf(request.originalUrl), status, durationMs: seconds * 1000, clientId: response.locals.client?.clientId, ...(response.writableFinished ? {} : { aborted: true }) };
      if (status >= 500) logger.error(entry, 'request');
      else logger.info(entry, 'request');
    });
    next();
  };
}

/** The path without its query string: a query can carry what no log should keep. */
function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query < 0 ? url : url.slice(0, query);
}

const statusLabels = new Map<number, string>();
function statusLabel(status: number): string {
  let label = statusLabels.get(status);
  if (label === undefined) {
    label = String(status);
    statusLabels.set(status, label);
  }
  return label;
}

/**
 * Several handlers as one Express layer: each runs when the one before calls next(); an error
 * (thrown, rejected or passed) goes to Express. What Express's route would do, without a layer,
 * a match and a dispatch per step on the hot path.
 */
export function oneLayer(handlers: readonly RequestHandler[]): RequestHandler {
  return (request, response, next) => {
    let index = 0;
    const step = (error?: unknown): void => {
      if (error !== undefined && error !== null) {
        next(error);
        return;
      }
      const handler = handlers[index];
      index += 1;
      if (handler === undefined) {
        next();
        return;
      }
      try {
        const returned = handler(request, response, step) as unknown;
        if (returned instanceof Promise) returned.then(undefined, next);
      } catch (error) {
        next(error);
      }
    };
    step();
  };
}

/**
 * The API as an Express application. `admission` bounds the requests served at once (see
 * admission.ts); by default one is made from the config, whose sampler the caller stops with
 * `app.locals.admission.close()` (startApi does).
 */
export function createApp(stockhold: Stockhold, logger: Logger, given?: Admission): Express {
  const metrics = stockhold.config.metricsEnabled ? stockhold.metrics : null;
  const admission = given ?? new Admission(stockhold.config, metrics === null ? undefined : (inFlight) => metrics.httpInFlight.set(inFlight));
  const app = express();
  app.locals.admission = admission;
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', 'simple');
  const observe = requestObservation(logger, metrics, admission);
  app.use(observe);

  // Authentication, then (when configured) the client's rate limit: both before the body is read.
  const { rateLimitPerClientRps, rateLimitBurst } = stockhold.config;
  const authenticate = rateLimitPerClientRps === null
    ? authentication(stockhold.config.apiKeys)
    : oneLayer([authentication(stockhold.config.apiKeys), rateLimit(stockhold, { rate: rateLimitPerClientRps, burst: rateLimitBurst })]);
  const parseJson = jsonBody(bodyBytesMax);
  // The hot path first, flat on the application, its steps one layer; then the rest of the API.
  const hotPath = oneLayer([authenticate, parseJson, requireScope('checkout'), createReservationHandler(stockhold)]);
  app.post(hotPathRoute, hotPath);
  const admin = adminRoutes(stockhold);
  app.use('/v1/admin', authenticate, parseJson, requireScope('admin'), admin);
  const v1 = v1Routes(stockhold);
  app.use('/v1', authenticate, parseJson, v1);
  app.get('/healthz', (_request, response) => {
    response.json({ status: 'ok' });
  });
  app.get('/readyz', async (_request, response) => {
    const readiness = await checkReadiness(stockhold.redis, stockhold.knex);
    if (readiness.ready) response.json({ status: 'ready', checks: readiness.checks });
    else sendProblem(response, 'backend_unavailable', 'Not ready: see checks', { checks: readiness.checks }, 1);
  });
  if (metrics !== null) {
    app.get('/metrics', async (_request, response) => {
      const { contentType, body } = await metrics.render();
      response.setHeader('Content-Type', contentType);
      response.send(body);
    });
  }
  app.use(queueDashboardPath, queueDashboard(stockhold));
  const document = openApiDocument(stockhold.config);
  app.get('/openapi.json', (_request, response) => {
    response.json(document);
  });
  app.use(apiDocsPath, apiDocs());


  const allowedMethods = routeMethodsOf([
    { prefix: '', stack: (app as unknown as { router: { stack: RouteLayer[] } }).router.stack },
    { prefix: '/v1', stack: v1.stack as RouteLayer[] },
    { prefix: '/v1/admin', stack: admin.stack as RouteLayer[] },
  ]);
  app.use((request, response, next) => {
    const allowed = allowedMethods(request.path);
    if (allowed === undefined || allowed.includes(request.method)) {
      next(new StockholdError('route_not_found', `No route for ${request.method} ${request.path}`));
      return;
    }
    response.setHeader('Allow', allowed.join(', '));
    next(errors.methodNotAllowed(request.method, allowed));
  });
  const problems = problemHandler(logger);
  app.use(problems);
  fastLane(app, oneLayer([observe, hotPath]), problems);
  return app;
}

/** The hot path's route: POST here skips the router (fastLane). */
export const hotPathRoute = '/v1/reservations';

/**
 * The hot path without the router. Express 5's router (path matching, a `next` per layer, the
 * params and prefix bookkeeping) and its prototype swap of every request and response (V8
 * deoptimises objects whose prototype changes) cost more per request than everything Stockhold
 * does for a reservation (docs/benchmarks.md: a bare Node endpoint answers 3-4x what a bare
 * Express one does on this machine). `POST /v1/reservations` exactly (a query string allowed) is
 * handed to the same observation and handlers, which use only Node's own request and response
 * API and `locals`, as does the problem handler (problem.ts). Every other
 * request, and every other spelling of this one (a trailing slash, other case), goes through the
 * router, where the same handlers are mounted on the same route.
 */
function fastLane(app: Express, handlers: RequestHandler, problems: ErrorRequestHandler): void {
  type Handle = (request: IncomingMessage, response: ServerResponse, callback?: unknown) => void;
  const routed = (app as unknown as { handle: Handle }).handle.bind(app);
  (app as unknown as { handle: Handle }).handle = (incoming, outgoing, callback) => {
    const url = incoming.url ?? '';
    if (incoming.method !== 'POST' || !(url === hotPathRoute || url.startsWith(`${hotPathRoute}?`))) {
      routed(incoming, outgoing, callback);
      return;
    }
    const request = incoming as Request;
    const response = outgoing as Response;
    response.locals = { route: hotPathRoute };
    request.originalUrl = url;
    request.baseUrl = '';
    handlers(request, response, (error?: unknown) => {
      // The handlers answer or fail; none hands the request on. Problems are written with Node's
      // response API (problem.ts), so a refusal (a sold-out SKU answers thousands a second) stays
      // on the fast lane too.
      problems(error ?? new StockholdError('route_not_found', `No route for POST ${hotPathRoute}`), request, response, () => undefined);
    });
  };
}
