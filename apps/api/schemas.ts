// Request schemas: the single source for validation (compiled once with Ajv) and for the
// OpenAPI document (apps/api/openapi.ts). Limits come from the Config, so an operator's
// QUANTITY_MAX shows up in both.
import { stripesMax } from '../../lib/stock/stripes';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import type { Config } from '../../lib/config';
import { errors, type FieldProblem } from '../../lib/errors';

export const linesMax = 50;
export const ttlSecondsMax = 86_400;
export const reasonLengthMax = 200;
export const customerIdLengthMax = 128;
export const idempotencyKeyLengthMax = 255;
export const bodyBytesMax = 64 * 1024;
/** A per-customer cap of a SKU, units, at most (the migration's CHECK says the same). */
export const perCustomerLimitMax = 1000;
export const skuPattern = '^[A-Za-z0-9._-]{1,64}$';
/**
 * Text that reaches Postgres (a reason, a customer id): no NUL, which Postgres refuses in text (a
 * customer id with one made every commit of its reservation fail), and no unpaired surrogate,
 * which UTF-8 cannot hold (it was stored as U+FFFD, so the answer differed from the request).
 * Ajv compiles patterns with the u flag: a pair is one code point, outside the range.
 */
const storableTextPattern = '^[^\\u0000\\uD800-\\uDFFF]*$';
const skuRegExp = new RegExp(skuPattern);
const idempotencyKeyRegExp = /^[\x21-\x7e]{1,255}$/;

export function buildSchemas(config: Config) {
  const sku = Type.String({ pattern: skuPattern, description: '1-64 of A-Z a-z 0-9 . _ -' });
  const setStock = Type.Object(
    {
      onHand: Type.Integer({ minimum: 0, maximum: config.stockOnHandMax }),
      stripes: Type.Optional(Type.Integer({ minimum: 1, maximum: stripesMax, description: 'split the SKU over this many stripes (hash slots); default: as it is (1 for a new SKU)' })),
      perCustomerLimit: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: perCustomerLimitMax }), Type.Null()], { description: 'units one customer may hold across live (pending and confirmed) reservations; null removes the cap; default: as it is (none for a new SKU)' })),
    },
    { additionalProperties: false },
  );
  const adjustment = Type.Object(
    {
      delta: Type.Integer({ minimum: -config.stockOnHandMax, maximum: config.stockOnHandMax, not: { const: 0 }, description: 'units; + receipt, - shrinkage; never 0' }),
      reason: Type.String({ minLength: 1, maxLength: reasonLengthMax, pattern: storableTextPattern, description: 'no NUL, no unpaired surrogates' }),
    },
    { additionalProperties: false },
  );
  const line = Type.Object({ sku, quantity: Type.Integer({ minimum: 1, maximum: config.quantityMax }) }, { additionalProperties: false });
  const createReservation = Type.Object(
    {
      lines: Type.Array(line, { minItems: 1, maxItems: linesMax }),
      ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: ttlSecondsMax, description: `default ${config.holdTtlDefaultSeconds}` })),
      customerId: Type.Optional(Type.String({ minLength: 1, maxLength: customerIdLengthMax, pattern: storableTextPattern, description: 'no NUL, no unpaired surrogates' })),
    },
    { additionalProperties: false },
  );
  return { sku, setStock, adjustment, line, createReservation };
}

export type Schemas = ReturnType<typeof buildSchemas>;
export type SetStockBody = Static<Schemas['setStock']>;
export type AdjustmentBody = Static<Schemas['adjustment']>;
export type CreateReservationBody = Static<Schemas['createReservation']>;

function fieldOf(error: ErrorObject): FieldProblem {
  const path = error.instancePath.split('/').slice(1).map((part) => (/^\d+$/.test(part) ? `[${part}]` : `.${part}`)).join('');
  const base = `body${path}`;
  if (error.keyword === 'required') return { field: `${base}.${String(error.params.missingProperty)}`, message: 'is required' };
  if (error.keyword === 'additionalProperties') return { field: `${base}.${String(error.params.additionalProperty)}`, message: 'is not allowed' };
  if (error.keyword === 'not') return { field: base, message: 'must not be 0' };
  return { field: base, message: error.message ?? 'is invalid' };
}

export interface Validator<T> {
  (body: unknown): T;
  readonly schema: TSchema;
}

const ajv = new Ajv({ allErrors: true, strict: true, coerceTypes: false, useDefaults: false });

/** Compiles once; the returned function returns the typed body or throws validation_failed. */
export function validator<T extends TSchema>(schema: T): Validator<Static<T>> {
  const validate: ValidateFunction = ajv.compile(schema);
  const check = (body: unknown): Static<T> => {
    if (body === undefined) throw errors.validation([{ field: 'body', message: 'a JSON body is required' }]);
    if (!validate(body)) throw errors.validation((validate.errors ?? []).map(fieldOf));
    return body as Static<T>;
  };
  return Object.assign(check, { schema });
}

export function validateSku(value: unknown): string {
  if (typeof value !== 'string' || !skuRegExp.test(value)) {
    throw errors.validation([{ field: 'path.sku', message: 'must be 1-64 of A-Z a-z 0-9 . _ -' }]);
  }
  return value;
}

/** The Idempotency-Key header: required where `required`, 1-255 visible ASCII characters. */
export function idempotencyKeyOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (!idempotencyKeyRegExp.test(header)) {
    throw errors.validation([{ field: 'header.Idempotency-Key', message: `must be 1-${idempotencyKeyLengthMax} visible ASCII characters` }]);
  }
  return header;
}
