// Requests for `npm run fuzz`, from a seed: a valid request for a random operation of the OpenAPI
// document (its path parameters, query, headers and body drawn within the documented bounds, on
// SKUs and reservations the run made), then, half of the time, one mutation of it: wrong types,
// huge, negative and fractional numbers, deep nesting, long arrays, unicode and lone surrogates,
// prototype-pollution keys, broken JSON, wrong content types, odd Idempotency-Keys, wrong or
// missing credentials, bad query values, bad path parameters, unknown paths and methods.

/** A seeded PRNG (mulberry32): the same seed gives the same run. */
export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

export type KeyName = 'checkout' | 'otherCheckout' | 'fulfillment' | 'admin';

export interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  /** A JSON value to send, or `raw` instead. */
  body?: unknown;
  raw?: string;
  readonly operation: string;
  mutation?: string;
}

/** What the run knows to aim requests at. */
export interface Targets {
  readonly skus: readonly string[];
  readonly reservationIds: string[];
  readonly usedKeys: Array<{ key: string; body: unknown }>;
  readonly secrets: Readonly<Record<KeyName, string>>;
}

/** Bounds of a run's requests (each a named limit). */
export const fuzzLimits = {
  /** Reservation ids and used keys remembered, at most (older ones are dropped). */
  rememberedMax: 2000,
  /** Lines in a generated valid reservation. */
  linesPerReservationMax: 3,
  /** Nesting depth of the deep-nesting mutation: deep enough to hurt a recursive parser. */
  nestingDepth: 5000,
  /** Items of the long-array mutation (past the body limit once serialised). */
  longArrayItems: 20_000,
} as const;

const randomIdChars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const randomId = (random: Random) => Array.from({ length: 22 }, () => random.pick([...randomIdChars])).join('');

function auth(targets: Targets, key: KeyName): Record<string, string> {
  return { authorization: `Bearer ${targets.secrets[key]}` };
}

function freshKey(random: Random): string {
  return `fuzz-${Math.floor(random.next() * 1e12).toString(36)}-${Math.floor(random.next() * 1e12).toString(36)}`;
}

function reservationBody(random: Random, targets: Targets): Record<string, unknown> {
  const count = random.int(1, Math.min(fuzzLimits.linesPerReservationMax, targets.skus.length));
  const skus = new Set<string>();
  while (skus.size < count) skus.add(random.pick(targets.skus));
  const body: Record<string, unknown> = { lines: [...skus].map((sku) => ({ sku, quantity: random.int(1, 5) })) };
  // Holds outlive the run: an expiry meanwhile would change stock with no request to blame.
  if (random.chance(0.3)) body.ttlSeconds = random.int(3600, 86_400);
  if (random.chance(0.5)) body.customerId = random.pick(['cust-1', 'cust-2', 'cust-3', `cust-${random.int(4, 1000)}`]);
  return body;
}

/** A valid request for one operation of the document, aimed at what the run has made. */
export function validRequest(random: Random, targets: Targets): FuzzRequest {
  const sku = random.chance(0.9) ? random.pick(targets.skus) : `FUZZ-NONE-${random.int(1, 1e6)}`;
  const id = targets.reservationIds.length > 0 && random.chance(0.85) ? random.pick(targets.reservationIds) : randomId(random);
  const operation = random.pick(operations);
  switch (operation) {
    case 'getSku':
      return { operation, method: 'GET', path: `/v1/skus/${sku}`, headers: auth(targets, random.pick(['checkout', 'fulfillment', 'admin'])) };
    case 'setStock': {
      const body: Record<string, unknown> = { onHand: random.int(0, 3000) };
      if (random.chance(0.2)) body.perCustomerLimit = random.chance(0.5) ? null : random.int(1, 1000);
      return { operation, method: 'PUT', path: `/v1/skus/${sku}/stock`, headers: { ...auth(targets, 'admin'), 'content-type': 'application/json' }, body };
    }
    case 'adjustStock': {
      const delta = random.chance(0.5) ? random.int(1, 100) : -random.int(1, 100);
      return { operation, method: 'POST', path: `/v1/skus/${sku}/adjustments`, headers: { ...auth(targets, 'admin'), 'content-type': 'application/json', 'idempotency-key': freshKey(random) }, body: { delta, reason: 'fuzz' } };
    }
    case 'createReservation': {
      // Now and then the same key again: with the same body a replay, with another a 422.
      if (targets.usedKeys.length > 0 && random.chance(0.1)) {
        const used = random.pick(targets.usedKeys);
        const body = random.chance(0.5) ? used.body : reservationBody(random, targets);
        return { operation, method: 'POST', path: '/v1/reservations', headers: { ...auth(targets, 'checkout'), 'content-type': 'application/json', 'idempotency-key': used.key }, body };
      }
      return { operation, method: 'POST', path: '/v1/reservations', headers: { ...auth(targets, random.chance(0.9) ? 'checkout' : 'otherCheckout'), 'content-type': 'application/json', 'idempotency-key': freshKey(random) }, body: reservationBody(random, targets) };
    }
    case 'getReservation':
      return { operation, method: 'GET', path: `/v1/reservations/${id}`, headers: auth(targets, random.pick(['checkout', 'fulfillment', 'admin'])) };
    case 'releaseReservation':
      return { operation, method: 'DELETE', path: `/v1/reservations/${id}`, headers: auth(targets, random.pick(['checkout', 'fulfillment', 'admin'])) };
    case 'confirmReservation':
      return { operation, method: 'POST', path: `/v1/reservations/${id}/confirm`, headers: auth(targets, random.pick(['checkout', 'fulfillment'])) };
    case 'cancelReservation':
      return { operation, method: 'POST', path: `/v1/reservations/${id}/cancel`, headers: auth(targets, random.pick(['fulfillment', 'admin'])) };
    case 'runReconcile':
      return { operation, method: 'POST', path: `/v1/reconcile?dryRun=${random.chance(0.7) ? 'true' : 'false'}`, headers: auth(targets, 'admin') };
    case 'listReconcileRuns':
      return { operation, method: 'GET', path: `/v1/reconcile/runs?limit=${random.int(1, 1000)}`, headers: auth(targets, 'admin') };
    case 'listEvents':
      return { operation, method: 'GET', path: `/v1/events?after=${random.int(0, 500)}&limit=${random.int(1, 1000)}`, headers: auth(targets, random.pick(['fulfillment', 'admin'])) };
    case 'listJobs':
      return { operation, method: 'GET', path: `/v1/admin/jobs?queue=${random.pick(['commits', 'webhooks', 'reconcile'])}&state=${random.pick(['failed', 'waiting', 'active', 'delayed', 'completed'])}&limit=${random.int(1, 1000)}`, headers: auth(targets, 'admin') };
    case 'retryJob':
      return { operation, method: 'POST', path: `/v1/admin/jobs/${random.pick(['commits', 'webhooks', 'reconcile'])}/${random.chance(0.5) ? id : String(random.int(1, 1e6))}/retry`, headers: auth(targets, 'admin') };
    default:
      return { operation: 'getQueueDashboard', method: 'GET', path: '/admin/queues', headers: auth(targets, 'admin') };
  }
}

const operations = [
  'getSku', 'setStock', 'adjustStock', 'createReservation', 'createReservation', 'createReservation', 'getReservation', 'releaseReservation', 'confirmReservation',
  'cancelReservation', 'runReconcile', 'listReconcileRuns', 'listEvents', 'listJobs', 'retryJob', 'getQueueDashboard',
] as const;

/** Paths of an object's values that are numbers, strings, objects or arrays (to mutate one). */
function leaves(value: unknown, path: Array<string | number> = [], found: Array<Array<string | number>> = []): Array<Array<string | number>> {
  if (found.length > 200) return found;
  if (Array.isArray(value)) value.forEach((item, index) => leaves(item, [...path, index], found));
  else if (value !== null && typeof value === 'object') for (const [key, item] of Object.entries(value)) leaves(item, [...path, key], found);
  if (path.length > 0) found.push(path);
  return found;
}

/** The paths of the leaves of one JSON type. */
function leavesOfType(body: unknown, type: 'number' | 'string'): Array<Array<string | number>> {
  return leaves(body).filter((path) => typeof path.reduce<unknown>((node, step) => (node as Record<string | number, unknown>)[step], body) === type);
}

/** Replaces one leaf of the body of that JSON type (if any) with one of `values`; the new body. */
function replaceLeaf(request: FuzzRequest, random: Random, type: 'number' | 'string', values: readonly unknown[]): unknown {
  const body = clone(request.body);
  const paths = leavesOfType(body, type);
  if (paths.length === 0) return undefined;
  setAt(body, random.pick(paths), random.pick(values));
  request.body = body;
  return body;
}

function setAt(root: unknown, path: ReadonlyArray<string | number>, value: unknown): void {
  let node = root as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) node = node[step] as Record<string | number, unknown>;
  node[path[path.length - 1]!] = value;
}

const clone = (value: unknown): unknown => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

const oddStrings = ['', ' ', '\u0000', '\ud800', 'a\udc00b', '\u202e\u200b', '🛒🔥', 'a'.repeat(70_000), '\\', '"', '<script>', '../../etc/passwd', 'SKU-1\nX', '%00', 'é'.normalize('NFD')];
const oddNumbers = [-1, 0, 1.5, -0.5, 1e308, -1e308, 2 ** 53 + 1, 2 ** 63, Number.MAX_SAFE_INTEGER, 1e-300];
const wrongTypes = [null, true, 'x', '1', [], {}, [1], { a: 1 }];

interface Mutation {
  readonly name: string;
  applies(request: FuzzRequest): boolean;
  apply(request: FuzzRequest, random: Random, targets: Targets): void;
}

const hasBody = (request: FuzzRequest) => request.body !== undefined;

const mutations: readonly Mutation[] = [
  { name: 'wrong-type', applies: hasBody, apply: (request, random) => {
    const body = clone(request.body);
    const paths = leaves(body);
    if (paths.length === 0) request.body = random.pick(wrongTypes);
    else {
      setAt(body, random.pick(paths), random.pick(wrongTypes));
      request.body = body;
    }
  } },
  { name: 'odd-number', applies: hasBody, apply: (request, random) => {
    const body = replaceLeaf(request, random, 'number', oddNumbers);
    // Numbers past what a double holds go as raw text, so that the parser meets them.
    if (body !== undefined && random.chance(0.3)) {
      request.raw = JSON.stringify(body).replace(/:(-?\d+(\.\d+)?(e[+-]?\d+)?)/, `:${random.pick(['1e999', '-1e999', '123456789012345678901234567890', '0.0000000000000000000000001', '-0'])}`);
      request.body = undefined;
    }
  } },
  { name: 'odd-string', applies: hasBody, apply: (request, random) => {
    replaceLeaf(request, random, 'string', oddStrings);
  } },
  { name: 'lone-surrogate', applies: hasBody, apply: (request) => {
    // Into a value (a string after a colon), not a key, which would be refused as unknown.
    request.raw = JSON.stringify(request.body).replace(/:"([^"]*)"/, ':"\\ud800$1"');
    request.body = undefined;
  } },
  { name: 'deep-nesting', applies: () => true, apply: (request, random) => {
    const depth = random.chance(0.5) ? fuzzLimits.nestingDepth : 100;
    request.raw = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    if (request.body !== undefined && random.chance(0.5)) request.raw = JSON.stringify(request.body).replace(/}$/, `,"deep":${'['.repeat(depth)}${']'.repeat(depth)}}`);
    request.body = undefined;
    request.headers['content-type'] ??= 'application/json';
  } },
  { name: 'long-array', applies: (request) => request.operation === 'createReservation', apply: (request, random, targets) => {
    const count = random.chance(0.5) ? fuzzLimits.longArrayItems : 51;
    request.body = { lines: Array.from({ length: count }, (_, index) => ({ sku: targets.skus[index % targets.skus.length], quantity: 1 })) };
  } },
  { name: 'extra-keys', applies: hasBody, apply: (request, random) => {
    const extra = random.pick(['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'admin']);
    const pollution = `"${extra}":{"polluted":true,"prototype":{"polluted":true}}`;
    const text = JSON.stringify(request.body);
    // At the top, or inside the first nested object (a reservation's first line).
    request.raw = random.chance(0.5) && text.includes('[{') ? text.replace('[{', `[{${pollution},`) : text.replace(/^\{/, `{${pollution},`);
    request.body = undefined;
  } },
  { name: 'broken-json', applies: () => true, apply: (request, random) => {
    const text = request.body === undefined ? '{"a":1}' : JSON.stringify(request.body);
    request.raw = random.pick([text.slice(0, Math.max(1, text.length - 3)), `${text},`, text.replace(/:/, ':NaN,"x":'), `${text}${text}`, "{'a':1}", '\uFEFF\uFEFF{}', 'null', '[]', '"string"', '1e999']);
    request.body = undefined;
    request.headers['content-type'] ??= 'application/json';
  } },
  { name: 'content-type', applies: () => true, apply: (request, random) => {
    if (request.body === undefined && request.raw === undefined) request.body = {};
    const type = random.pick(['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', 'application/jsonx', 'multipart/form-data; boundary=x', '', 'application/json, text/plain']);
    if (type === '') delete request.headers['content-type'];
    else request.headers['content-type'] = type;
    if (random.chance(0.3)) request.headers['content-encoding'] = 'gzip';
  } },
  { name: 'idempotency-key', applies: () => true, apply: (request, random) => {
    // Header values as bytes: a non-ASCII key arrives as its UTF-8 bytes read as Latin-1 (what a
    // client sending raw UTF-8 puts on the wire); NUL and line breaks cannot be sent at all.
    const key = random.pick(['', ' ', 'k'.repeat(256), 'has space', 'tab\there', Buffer.from('ключ', 'utf8').toString('latin1'), 'latin1\u00ff', 'x'.repeat(255)]);
    request.headers['idempotency-key'] = key;
  } },
  { name: 'no-idempotency-key', applies: (request) => request.headers['idempotency-key'] !== undefined, apply: (request) => {
    delete request.headers['idempotency-key'];
  } },
  { name: 'credentials', applies: () => true, apply: (request, random, targets) => {
    const choice = random.int(0, 5);
    if (choice === 0) delete request.headers.authorization;
    else if (choice === 1) request.headers.authorization = 'Bearer';
    else if (choice === 2) request.headers.authorization = `Basic ${Buffer.from('admin:nope').toString('base64')}`;
    else if (choice === 3) request.headers.authorization = 'Bearer wrong-secret';
    else if (choice === 4) request.headers.authorization = `bearer ${targets.secrets.admin}  `;
    else request.headers.authorization = `Bearer ${random.pick(Object.values(targets.secrets))}`;
  } },
  { name: 'query', applies: () => true, apply: (request, random) => {
    const [path] = request.path.split('?');
    const name = random.pick(['limit', 'after', 'dryRun', 'queue', 'state', 'x']);
    const value = random.pick(['abc', '-1', '0', '1e9', '1.5', '', 'true', 'maybe', '%00', '9'.repeat(400), '[]']);
    request.path = `${path}?${name}=${encodeURIComponent(value)}${random.chance(0.3) ? `&${name}=2` : ''}`;
  } },
  { name: 'path-parameter', applies: (request) => /\/v1\/(skus|reservations|admin\/jobs)\//.test(request.path), apply: (request, random) => {
    const odd = random.pick(['x'.repeat(65), 'a%2Fb', '%F0%9F%9B%92', '..', '%00', '%', 'A'.repeat(21), 'A'.repeat(23), 'a b', '~1', '%25']);
    request.path = request.path.replace(/^(\/v1\/(?:skus|reservations|admin\/jobs\/[a-z]+))\/[^/?]+/, `$1/${odd}`);
  } },
  { name: 'method', applies: () => true, apply: (request, random) => {
    request.method = random.pick(['PATCH', 'PUT', 'DELETE', 'OPTIONS', 'HEAD', 'POST', 'GET']);
  } },
  { name: 'unknown-path', applies: () => true, apply: (request, random) => {
    request.path = random.pick(['/v1/nope', '/v1/skus', '/v1/reservations/', '/v1//reservations', '/V1/RESERVATIONS', `/${'a/'.repeat(2000)}`, '/v1/skus/A/stock/extra', '/%2e%2e/etc/passwd', '/v2/reservations', '/v1/admin']);
  } },
];

/** Mutates the request once (a mutation that does not apply is skipped for another), naming it. */
export function mutate(request: FuzzRequest, random: Random, targets: Targets): FuzzRequest {
  for (let attempt = 0; attempt < 10; attempt += 1) {
    const mutation = random.pick(mutations);
    if (!mutation.applies(request)) continue;
    mutation.apply(request, random, targets);
    request.mutation = mutation.name;
    return request;
  }
  return request;
}

export function remember<T>(list: T[], item: T): void {
  list.push(item);
  if (list.length > fuzzLimits.rememberedMax) list.splice(0, list.length - fuzzLimits.rememberedMax);
}
