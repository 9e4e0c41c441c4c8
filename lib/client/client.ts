// A typed client for Stockhold's HTTP API, for checkout integrations and the operator CLI:
// openapi-fetch over the types openapi-typescript generated from the OpenAPI document
// (lib/client/schema.d.ts, by `npm run client:generate`; CI checks it is up to date). Every
// operation's path, parameters, body and answers are typed by the document; errors come back as
// the RFC 9457 problem documents the API answers.
import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from './schema';

export type { components, paths };
export type StockholdClient = Client<paths>;
export type Problem = components['schemas']['Problem'];
export type Reservation = components['schemas']['Reservation'];
export type SkuView = components['schemas']['SkuView'];

export interface StockholdClientOptions {
  /** The API's origin (and path prefix, if any), e.g. "https://stock.example.com". */
  readonly baseUrl: string;
  /** An API key secret (API_KEYS: clientId:scopes:secret), sent as a Bearer token. */
  readonly apiKey: string;
  /** Another fetch (timeouts, retries, tests); the global one otherwise. */
  readonly fetch?: (input: Request) => Promise<Response>;
}

export function createStockholdClient(options: StockholdClientOptions): StockholdClient {
  return createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/$/, ''),
    headers: { authorization: `Bearer ${options.apiKey}`, accept: 'application/json' },
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
  });
}
