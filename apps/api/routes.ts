// The v1 routes: parse, validate, call lib/, render. No domain logic here.
import { Router, type Request, type RequestHandler, type Response } from 'express';
import { errors, StockholdError } from '../../lib/errors';
import { requestFingerprint } from '../../lib/idempotency/fingerprint';
import { waitSecondsMax } from '../../lib/commits/commit-service';
import { eventsPageDefault, eventsPageMax, listEvents } from '../../lib/events/outbox';
import { withPostgres } from '../../lib/postgres/connection';
import { runsListMax } from '../../lib/reconcile/reconcile-log';
import { normaliseLines, reservationIdPattern, type Reservation } from '../../lib/reservations/reservation-service';
import { publicLines } from '../../lib/stock/stripes';
import type { Stockhold } from '../../lib/stockhold';
import { clientOf, requireScope, seesAllReservations } from './auth';
import { isJsonType } from './json-body';
import { buildSchemas, idempotencyKeyOf, validateSku, validator } from './schemas';

function reservationBody(reservation: Reservation, status: string = reservation.status) {
  return {
    id: reservation.id,
    status,
    // Stripe lines (lib/stock/stripes.ts) are summed back to their SKU: stripes are not the API's.
    lines: publicLines(reservation.lines),
    ...(reservation.customerId === null ? {} : { customerId: reservation.customerId }),
    expiresAt: new Date(reservation.expiresAtMs).toISOString(),
    createdAt: new Date(reservation.createdAtMs).toISOString(),
    ...(reservation.confirmedAtMs === null ? {} : { confirmedAt: new Date(reservation.confirmedAtMs).toISOString() }),
    ...(reservation.cancelRequested && status === 'committed' ? { cancelRequested: true } : {}),
  };
}

/** RFC 7240 `Prefer: wait=N`, N whole seconds, at most 30; anything else is ignored. */
function preferredWaitSeconds(request: Request): number | undefined {
  const match = /(?:^|[,;\s])wait=(\d{1,6})(?:$|[,;\s])/.exec(request.get('prefer') ?? '');
  return match === null ? undefined : Math.min(Number(match[1]), waitSecondsMax);
}

/** Waits (when asked) for the worker, then answers 200 when done and 202 while queued. */
async function answerAfterWait(request: Request, response: Response, stockhold: Stockhold, reservation: Reservation, done: (r: Reservation) => boolean): Promise<void> {
  let current = reservation;
  const waitSeconds = preferredWaitSeconds(request);
  if (waitSeconds !== undefined && !done(current)) {
    current = (await stockhold.commits.waitFor(current.id, done, waitSeconds * 1000)) ?? current;
    response.setHeader('Preference-Applied', `wait=${waitSeconds}`);
  }
  response.status(done(current) ? 200 : 202).json(reservationBody(current));
}

function requireIdempotencyKey(request: Request): string {
  const given = request.headers['idempotency-key'];
  const key = idempotencyKeyOf(typeof given === 'string' ? given : undefined);
  if (key === undefined) throw new StockholdError('idempotency_key_missing', 'Send an Idempotency-Key header (1-255 visible ASCII characters) with every mutation');
  return key;
}

/** A body is JSON or absent; anything else is 415 before it is read. */
function requireJsonBody(request: Request): void {
  const { headers } = request;
  if (headers['content-length'] === '0') return;
  // No body at all (neither length nor chunks) is not refused here: the validator says what is missing.
  if (headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) return;
  if (!isJsonType(headers['content-type'])) {
    throw new StockholdError('unsupported_media_type', `Content-Type ${String(headers['content-type'] ?? '(none)')} is not application/json`);
  }
}

function markReplay(response: Response, replayed: boolean): void {
  if (replayed) response.setHeader('Idempotent-Replayed', 'true');
}


/**
 * POST /v1/reservations, the hot path. app.ts mounts it directly on the application, ahead of
 * every other layer, so a reservation walks as few Express layers as a bare endpoint does.
 */
export function createReservationHandler(stockhold: Stockhold): RequestHandler {
  const { config } = stockhold;
  const validateCreateReservation = validator(buildSchemas(config).createReservation);
  return async (request, response) => {
    requireJsonBody(request);
    const body = validateCreateReservation(request.body);
    const idempotencyKey = requireIdempotencyKey(request);
    const lines = normaliseLines(body.lines);
    const tooMany = lines.filter((line) => line.quantity > config.quantityMax);
    if (tooMany.length > 0) {
      throw errors.validation(tooMany.map((line) => ({ field: `body.lines(${line.sku})`, message: `summed quantity ${line.quantity} is above ${config.quantityMax}` })));
    }
    const { clientId } = clientOf(response);
    const { reservation, replayed } = await stockhold.reservations.create({
      clientId,
      idempotencyKey,
      fingerprint: requestFingerprint('POST /v1/reservations', body),
      lines,
      holdTtlSeconds: body.ttlSeconds ?? config.holdTtlDefaultSeconds,
      customerId: body.customerId ?? null,
    });
    markReplay(response, replayed);
    // Written directly (what res.status().location().json() does, without its layers).
    const payload = JSON.stringify(reservationBody(reservation));
    response.writeHead(201, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(payload), Location: `/v1/reservations/${reservation.id}` });
    response.end(payload);
  };
}

const reconcileRunsDefault = 50;

function skuRoutes(router: Router, stockhold: Stockhold): void {
  const schemas = buildSchemas(stockhold.config);
  const validateSetStock = validator(schemas.setStock);
  const validateAdjustment = validator(schemas.adjustment);

  router.get('/skus/:sku', async (request, response) => {
    response.json(await stockhold.stock.read(validateSku(request.params.sku)));
  });

  router.put('/skus/:sku/stock', requireScope('admin'), async (request, response) => {
    requireJsonBody(request);
    const sku = validateSku(request.params.sku);
    const body = validateSetStock(request.body);
    response.json(await stockhold.stock.setOnHand(sku, body.onHand, clientOf(response).clientId, body.stripes, body.perCustomerLimit));
  });

  router.post('/skus/:sku/adjustments', requireScope('admin'), async (request, response) => {
    requireJsonBody(request);
    const sku = validateSku(request.params.sku);
    const body = validateAdjustment(request.body);
    const key = requireIdempotencyKey(request);
    const { clientId } = clientOf(response);
    const fingerprint = requestFingerprint(`POST /v1/skus/${sku}/adjustments`, body);
    const result = await stockhold.stock.adjust(sku, body.delta, body.reason, clientId, { clientId, key, fingerprint });
    markReplay(response, result.replayed);
    response.status(result.status).json(result.body);
  });
}

function reservationRoutes(router: Router, stockhold: Stockhold): void {
  const visibleReservation = async (request: Request, response: Response): Promise<Reservation> => {
    const id = String(request.params.id);
    const reservation = await stockhold.reservations.read(id);
    const client = clientOf(response);
    // Another checkout client's reservation does not exist, as far as this client can tell.
    if (reservation === undefined || (!seesAllReservations(client) && reservation.clientId !== client.clientId)) {
      throw errors.reservationNotFound(id);
    }
    return reservation;
  };

  router.get('/reservations/:id', requireScope('checkout', 'fulfillment', 'admin'), async (request, response) => {
    response.json(reservationBody(await visibleReservation(request, response)));
  });

  router.delete('/reservations/:id', requireScope('checkout', 'fulfillment', 'admin'), async (request, response) => {
    const reservation = await visibleReservation(request, response);
    const status = await stockhold.reservations.release(reservation);
    response.json(reservationBody(reservation, status));
  });

  router.post('/reservations/:id/confirm', requireScope('checkout', 'fulfillment'), async (request, response) => {
    const confirmed = await stockhold.commits.confirm(await visibleReservation(request, response), response.locals.requestId as string);
    await answerAfterWait(request, response, stockhold, confirmed, (reservation) => reservation.status === 'committed');
  });

  router.post('/reservations/:id/cancel', requireScope('fulfillment', 'admin'), async (request, response) => {
    const id = String(request.params.id);
    if (!reservationIdPattern.test(id)) throw errors.reservationNotFound(id);
    const cancelling = await stockhold.commits.cancel(id, clientOf(response).clientId, response.locals.requestId as string);
    await answerAfterWait(request, response, stockhold, cancelling, (reservation) => reservation.status === 'cancelled');
  });
}

function reconcileRoutes(router: Router, stockhold: Stockhold): void {
  router.post('/reconcile', requireScope('admin'), async (request, response) => {
    const dryRun = request.query.dryRun;
    if (dryRun !== undefined && dryRun !== 'true' && dryRun !== 'false') {
      throw errors.validation([{ field: 'query.dryRun', message: 'must be true or false' }]);
    }
    response.json(await stockhold.reconciler.run('manual', dryRun === 'true'));
  });

  router.get('/reconcile/runs', requireScope('admin'), async (request, response) => {
    const limit = wholeNumberQuery(request.query.limit, 'limit', 1, runsListMax, reconcileRunsDefault);
    response.json({ runs: await withPostgres(() => stockhold.reconciler.log.latest(limit)) });
  });
}

function eventRoutes(router: Router, stockhold: Stockhold): void {
  router.get('/events', requireScope('fulfillment', 'admin'), async (request, response) => {
    const after = wholeNumberQuery(request.query.after, 'after', 0, Number.MAX_SAFE_INTEGER, 0);
    const limit = wholeNumberQuery(request.query.limit, 'limit', 1, eventsPageMax, eventsPageDefault);
    response.json(await withPostgres(() => listEvents(stockhold.knex, after, limit)));
  });
}

/** The one parser of whole-number query parameters (400 validation_failed naming the field). */
export function wholeNumberQuery(raw: unknown, name: string, min: number, max: number, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = typeof raw === 'string' && /^\d{1,16}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= min && value <= max)) throw errors.validation([{ field: `query.${name}`, message: `must be a whole number from ${min} to ${max}` }]);
  return value;
}

/** Every /v1 route but POST /v1/reservations, which app.ts mounts ahead of them. */
export function v1Routes(stockhold: Stockhold): Router {
  const router = Router();
  skuRoutes(router, stockhold);
  reservationRoutes(router, stockhold);
  reconcileRoutes(router, stockhold);
  eventRoutes(router, stockhold);
  return router;
}
