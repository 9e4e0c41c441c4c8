// The OpenAPI 3.1 document, built from the same schemas the routes validate with.
import type { Config } from '../../lib/config';
import { allQueueNames } from '../../lib/queues';
import { jobIdLengthMax, jobsListDefault, jobsListMax, jobStateDefault, jobStates } from './admin-routes';
import { problemCodes } from './problem';
import { queueDashboardPath } from './queue-dashboard';
import { buildSchemas, idempotencyKeyLengthMax } from './schemas';

/** What a problem status can mean, beyond its code (the code says which). */
const problemDescriptions: Readonly<Record<number, string>> = {
  400: 'validation_failed (errors: [{field, message}]: body, path, query), idempotency_key_missing, customer_id_required; nothing changed',
  401: 'unauthorized: no or an unknown API key (WWW-Authenticate)',
  403: 'forbidden: the key lacks the scope this operation needs',
  404: 'not found: sku_not_found, reservation_not_found (another client\'s reservation too), job_not_found',
  410: 'reservation_expired: its hold ran out and its units went back',
  413: 'payload_too_large: the body is over 64 KiB',
  415: 'unsupported_media_type: a body that is not application/json (UTF-8, no Content-Encoding)',
  422: 'idempotency_key_reused: the key came with another request before',
  409: 'conflict: insufficient_stock, customer_limit_exceeded (limit, held), too_many_active_holds (limit, active), and others by code; Retry-After when a retry can succeed',
  429: 'rate_limited: the API client\'s token bucket is empty (RATE_LIMIT_PER_CLIENT_RPS); Retry-After, RateLimit-Policy and RateLimit tell when',
  503: 'backend_unavailable (fail closed), overloaded (shed at once, MAX_IN_FLIGHT / MAX_EVENT_LOOP_DELAY_MS), or record_migration_pending (a reservation of an earlier version, until `npm run migrate:records` has moved it); Retry-After',
};

export function openApiDocument(config: Config) {
  const schemas = buildSchemas(config);
  const problem = { $ref: '#/components/schemas/Problem' };
  const header = (name: string) => ({ $ref: `#/components/headers/${name}` });
  // Retry-After where a retry can succeed; 429 always says when, and the bucket's state.
  const problemHeaders: Readonly<Record<number, Record<string, unknown>>> = {
    409: { 'Retry-After': header('RetryAfter') },
    429: { 'Retry-After': header('RetryAfterRequired'), 'RateLimit-Policy': header('RateLimitPolicy'), RateLimit: header('RateLimit') },
    503: { 'Retry-After': header('RetryAfterRequired') },
  };
  const problems = (...statuses: number[]) =>
    Object.fromEntries(
      statuses.map((status) => [
        String(status),
        { description: problemDescriptions[status] ?? 'problem', ...(problemHeaders[status] === undefined ? {} : { headers: problemHeaders[status] }), content: { 'application/problem+json': { schema: problem } } },
      ]),
    );
  // Every /v1 route reads a body it is sent (JSON only, at most 64 KiB), whether or not it takes
  // one, and validates its path and query: 400, 413 and 415 can answer any of them.
  const v1Problems = (...statuses: number[]) => problems(...[...new Set([...statuses, 400, 413, 415])].sort((a, b) => a - b));
  const json = (schema: unknown, description: string) => ({ description, content: { 'application/json': { schema } } });
  const body = (schema: unknown) => ({ required: true, content: { 'application/json': { schema } } });
  const idempotencyKey = { name: 'Idempotency-Key', in: 'header', required: true, schema: { type: 'string', minLength: 1, maxLength: idempotencyKeyLengthMax } };
  const skuParameter = { name: 'sku', in: 'path', required: true, schema: schemas.sku };
  const idParameter = { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{22}$' } };
  const skuView = { $ref: '#/components/schemas/SkuView' };
  const prefer = { name: 'Prefer', in: 'header', required: false, schema: { type: 'string', example: 'wait=10' }, description: 'wait=N (N <= 30): wait up to N s for the ledger' };
  const reservation = { $ref: '#/components/schemas/Reservation' };
  return {
    openapi: '3.1.0',
    info: {
      title: 'Stockhold',
      version: '1.0.0',
      description: 'Stock reservations for flash-sale checkouts: an atomic hold in Redis, confirmed into an append-only Postgres ledger. Errors are RFC 9457 problem documents with a stable `code`.',
      license: { name: 'Proprietary (package.json: UNLICENSED)', identifier: 'LicenseRef-Proprietary' },
    },
    // Relative to the document: right behind a path prefix too.
    servers: [{ url: '.', description: 'The server that serves this document' }],
    security: [{ bearer: [] }],
    paths: {
      '/v1/skus/{sku}': { get: { operationId: 'getSku', summary: 'Read a SKU', parameters: [skuParameter], responses: { '200': json(skuView, 'The SKU: on hand, reserved, available'), ...v1Problems(400, 401, 404, 429, 503) } } },
      '/v1/skus/{sku}/stock': {
        put: { operationId: 'setStock', summary: 'Set on-hand (admin)', parameters: [skuParameter], requestBody: body(schemas.setStock), responses: { '200': json(skuView, 'The SKU after the change'), ...v1Problems(400, 401, 403, 409, 413, 415, 429, 503) } },
      },
      '/v1/skus/{sku}/adjustments': {
        post: {
          operationId: 'adjustStock',
          summary: 'Receipt or shrinkage (admin)',
          parameters: [skuParameter, idempotencyKey],
          requestBody: body(schemas.adjustment),
          responses: { '201': { ...json(skuView, 'The SKU after the adjustment (a replay answers the same)'), headers: { 'Idempotent-Replayed': header('IdempotentReplayed') } }, ...v1Problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 503) },
        },
      },
      '/v1/reservations': {
        post: {
          operationId: 'createReservation',
          summary: 'Reserve stock, all lines or none (checkout)',
          parameters: [idempotencyKey],
          requestBody: body(schemas.createReservation),
          responses: {
            '201': { ...json(reservation, 'Held: every line, until expiresAt (a replay of the same key answers the same)'), headers: { Location: header('Location'), 'Idempotent-Replayed': header('IdempotentReplayed') } },
            ...v1Problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
          },
        },
      },
      '/v1/reservations/{id}': {
        get: { operationId: 'getReservation', summary: 'Read a reservation', parameters: [idParameter], responses: { '200': json(reservation, 'The reservation'), ...v1Problems(401, 403, 404, 429, 503) } },
        delete: { operationId: 'releaseReservation', summary: 'Release a pending reservation', parameters: [idParameter], responses: { '200': json(reservation, 'Released (or expired, when its hold had run out): its units are back'), ...v1Problems(401, 403, 404, 409, 429, 503) } },
      },
      '/v1/reconcile': {
        post: {
          operationId: 'runReconcile',
          summary: 'Run one reconciliation now (admin)',
          parameters: [{ name: 'dryRun', in: 'query', required: false, schema: { enum: ['true', 'false'] } }],
          responses: { '200': json({ $ref: '#/components/schemas/ReconcileReport' }, 'The run\'s report'), ...v1Problems(400, 401, 403, 409, 429, 503) },
        },
      },
      '/v1/reconcile/runs': {
        get: {
          operationId: 'listReconcileRuns',
          summary: 'The latest reconciliation runs, newest first (admin)',
          parameters: [{ name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000, default: 50 } }],
          responses: { '200': json({ type: 'object', required: ['runs'], additionalProperties: false, properties: { runs: { type: 'array', items: { $ref: '#/components/schemas/ReconcileReport' } } } }, 'The runs'), ...v1Problems(400, 401, 403, 429, 503) },
        },
      },
      '/v1/events': {
        get: {
          operationId: 'listEvents',
          summary: 'Events from the outbox, oldest first, after a given id (fulfillment, admin)',
          parameters: [
            { name: 'after', in: 'query', required: false, schema: { type: 'integer', minimum: 0, default: 0 } },
            { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          ],
          responses: { '200': json({ $ref: '#/components/schemas/EventPage' }, 'A page of events; `next` is the id to ask after'), ...v1Problems(400, 401, 403, 429, 503) },
        },
      },
      '/v1/reservations/{id}/confirm': {
        post: {
          operationId: 'confirmReservation',
          summary: 'Confirm: the hold stops expiring and is committed to the ledger (owner, fulfillment)',
          parameters: [idParameter, prefer],
          responses: {
            '200': { ...json(reservation, 'Committed to the ledger (within Prefer: wait), or already past confirmed'), headers: { 'Preference-Applied': header('PreferenceApplied') } },
            '202': { ...json(reservation, 'Confirmed: the hold no longer expires; the commit to the ledger follows'), headers: { 'Preference-Applied': header('PreferenceApplied') } },
            ...v1Problems(401, 403, 404, 409, 410, 429, 503),
          },
        },
      },
      '/v1/admin/jobs': {
        get: {
          operationId: 'listJobs',
          summary: 'Jobs of the commit, webhook and reconcile queues in one state, newest first (admin)',
          parameters: [
            { name: 'queue', in: 'query', required: false, schema: { enum: [...allQueueNames] }, description: 'one queue; absent: all of them' },
            { name: 'state', in: 'query', required: false, schema: { enum: [...jobStates], default: jobStateDefault } },
            { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: jobsListMax, default: jobsListDefault } },
          ],
          responses: { '200': json({ $ref: '#/components/schemas/JobPage' }, 'The jobs'), ...v1Problems(400, 401, 403, 429, 503) },
        },
      },
      '/v1/admin/jobs/{queue}/{jobId}/retry': {
        post: {
          operationId: 'retryJob',
          summary: 'Retry a failed job (admin)',
          parameters: [
            { name: 'queue', in: 'path', required: true, schema: { enum: [...allQueueNames] } },
            { name: 'jobId', in: 'path', required: true, schema: { type: 'string', minLength: 1, maxLength: jobIdLengthMax, pattern: '^[\\x21-\\x7e]+$' } },
          ],
          responses: { '200': json({ $ref: '#/components/schemas/RetriedJob' }, 'Moved back to waiting'), ...v1Problems(400, 401, 403, 404, 409, 429, 503) },
        },
      },
      [queueDashboardPath]: {
        get: {
          operationId: 'getQueueDashboard',
          summary: 'The queue dashboard, a page for a browser (admin)',
          description: 'bull-board over the commit, webhook and reconcile queues; its assets and JSON API live under the same path. A browser answers the Basic challenge with the client id and an admin key secret.',
          security: [{ basic: [] }, { bearer: [] }],
          responses: {
            '200': { description: 'The dashboard page', content: { 'text/html': { schema: { type: 'string' } } } },
            ...problems(401, 403),
          },
        },
      },
      '/v1/reservations/{id}/cancel': {
        post: {
          operationId: 'cancelReservation',
          summary: 'Cancel a committed reservation: its units return to stock (fulfillment, admin)',
          parameters: [idParameter, prefer],
          responses: {
            '200': { ...json(reservation, 'Cancelled in the ledger (within Prefer: wait), or cancelled before'), headers: { 'Preference-Applied': header('PreferenceApplied') } },
            '202': { ...json(reservation, 'Cancellation requested: the ledger follows'), headers: { 'Preference-Applied': header('PreferenceApplied') } },
            ...v1Problems(401, 403, 404, 409, 429, 503),
          },
        },
      },
    },
    components: components(schemas),
  };
}

function components(schemas: ReturnType<typeof buildSchemas>) {
  return {
    headers: {
      RetryAfter: { description: 'seconds after which the same request may succeed (present when it can)', schema: { type: 'integer', minimum: 1 } },
      RetryAfterRequired: { description: 'seconds after which the same request may succeed', required: true, schema: { type: 'integer', minimum: 1 } },
      Location: { description: 'the reservation\'s URL', required: true, schema: { type: 'string' } },
      IdempotentReplayed: { description: '"true": the stored answer of an earlier request with the same Idempotency-Key; nothing changed again', schema: { type: 'string', enum: ['true'] } },
      PreferenceApplied: { description: 'wait=N when Prefer: wait=N was honoured', schema: { type: 'string' } },
      RateLimitPolicy: { description: 'the API client\'s bucket: "client";q=<burst>;w=<seconds> (draft-ietf-httpapi-ratelimit-headers)', required: true, schema: { type: 'string' } },
      RateLimit: { description: 'what is left: "client";r=<left>;t=<seconds until full>', required: true, schema: { type: 'string' } },
    },
    securitySchemes: {
      bearer: { type: 'http', scheme: 'bearer', description: 'An API key secret (API_KEYS: clientId:scopes:secret)' },
      basic: { type: 'http', scheme: 'basic', description: 'The queue dashboard (/admin/queues) in a browser: user = client id, password = an admin key secret' },
    },
    schemas: {
      SkuView: {
        type: 'object',
        required: ['sku', 'onHand', 'reserved', 'available'],
        additionalProperties: false,
        properties: { sku: { type: 'string' }, onHand: { type: 'integer', minimum: 0 }, reserved: { type: 'integer', minimum: 0 }, available: { type: 'integer', minimum: 0 }, stripes: { type: 'integer', minimum: 2, description: 'present when the SKU is striped: the sums are over its stripes' }, perCustomerLimit: { type: 'integer', minimum: 1, maximum: 1000, description: 'present when set: units one customer may hold across live reservations' } },
      },
      Reservation: {
        type: 'object',
        required: ['id', 'status', 'lines', 'expiresAt', 'createdAt'],
        additionalProperties: false,
        properties: {
          id: { type: 'string', pattern: '^[A-Za-z0-9_-]{22}$' },
          status: { enum: ['pending', 'confirmed', 'committed', 'released', 'expired', 'cancelled', 'rejected'] },
          confirmedAt: { type: 'string', format: 'date-time' },
          cancelRequested: { type: 'boolean', description: 'present (true) on a committed reservation whose cancellation is on its way' },
          lines: { type: 'array', minItems: 1, items: schemas.line },
          customerId: { type: 'string' },
          expiresAt: { type: 'string', format: 'date-time' },
          createdAt: { type: 'string', format: 'date-time' },
        },
      },
      ReconcileReport: {
        type: 'object',
        required: [
          'runId', 'trigger', 'dryRun', 'startedAt', 'finishedAt', 'skusChecked', 'holdsExpired', 'pinsReleased', 'stripesRebalanced', 'commitsRequeued', 'skusRebuilt',
          'driftCorrected', 'onHandCorrected', 'reservedCorrected', 'skusOutOfAgreement', 'stoppedEarly', 'debitsReleased', 'confirmedTruncated', 'skusFailed', 'failures', 'corrections',
        ],
        additionalProperties: false,
        properties: {
          runId: { type: 'string', format: 'uuid' },
          trigger: { enum: ['manual', 'scheduled', 'cli'] },
          dryRun: { type: 'boolean' },
          startedAt: { type: 'string', format: 'date-time' },
          finishedAt: { type: 'string', format: 'date-time' },
          skusChecked: { type: 'integer' },
          holdsExpired: { type: 'integer' },
          pinsReleased: { type: 'integer', description: 'Reservations whose pinned holds were given back because they never became confirmed' },
          stripesRebalanced: { type: 'integer', description: 'Striped SKUs whose stripes were evened out' },
          commitsRequeued: { type: 'integer' },
          skusRebuilt: { type: 'integer' },
          driftCorrected: { type: 'integer' },
          onHandCorrected: { type: 'integer' },
          reservedCorrected: { type: 'integer' },
          skusOutOfAgreement: { type: 'integer', description: 'SKUs found out of agreement between Redis and the ledger' },
          stoppedEarly: { type: 'boolean', description: 'The process was shutting down: the run ended after the page it was on' },
          debitsReleased: { type: 'integer' },
          confirmedTruncated: { type: 'integer' },
          skusFailed: { type: 'integer' },
          failures: { type: 'array', items: { type: 'object', required: ['sku', 'message'], additionalProperties: false, properties: { sku: { type: 'string' }, message: { type: 'string' } } } },
          corrections: {
            type: 'array',
            items: {
              type: 'object',
              required: ['sku', 'field', 'before', 'after'],
              additionalProperties: false,
              properties: { sku: { type: 'string' }, field: { enum: ['onHand', 'reserved', 'state', 'perCustomerLimit'] }, before: { type: ['integer', 'null'] }, after: { type: ['integer', 'null'] } },
            },
          },
        },
      },
      EventPage: {
        type: 'object',
        required: ['events', 'next'],
        additionalProperties: false,
        properties: {
          events: {
            type: 'array',
            items: {
              type: 'object',
              required: ['id', 'type', 'occurredAt', 'data'],
              additionalProperties: false,
              properties: {
                id: { type: 'integer' },
                type: { enum: ['reservation.committed', 'reservation.cancelled', 'reservation.rejected', 'stock.adjusted'] },
                occurredAt: { type: 'string', format: 'date-time' },
                data: { type: 'object', additionalProperties: true, description: 'the event\'s payload, by type' },
              },
            },
          },
          next: { type: 'integer' },
        },
      },
      JobPage: {
        type: 'object',
        required: ['jobs'],
        additionalProperties: false,
        properties: {
          jobs: {
            type: 'array',
            items: {
              type: 'object',
              required: ['queue', 'id', 'name', 'failedReason', 'attemptsMade', 'timestamp', 'finishedOn'],
              additionalProperties: false,
              properties: {
                queue: { enum: [...allQueueNames] },
                id: { type: 'string' },
                name: { type: 'string' },
                failedReason: { type: ['string', 'null'] },
                attemptsMade: { type: 'integer', minimum: 0 },
                timestamp: { type: 'integer', description: 'ms since the epoch (BullMQ)' },
                finishedOn: { type: ['integer', 'null'] },
              },
            },
          },
        },
      },
      RetriedJob: {
        type: 'object',
        required: ['queue', 'id', 'retried'],
        additionalProperties: false,
        properties: { queue: { enum: [...allQueueNames] }, id: { type: 'string' }, retried: { const: true } },
      },
      Problem: {
        type: 'object',
        description: 'RFC 9457 problem details; `code` is stable, extensions by code (errors, lines, limit, held, reason, ...)',
        required: ['type', 'title', 'status', 'code'],
        properties: {
          type: { type: 'string' },
          title: { type: 'string' },
          status: { type: 'integer', minimum: 400, maximum: 599 },
          detail: { type: 'string' },
          code: { enum: [...problemCodes] },
          instance: { type: 'string' },
          requestId: { type: 'string' },
        },
      },
    },
  };
}
