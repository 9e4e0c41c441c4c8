// Authentication (Authorization: Bearer <secret>) and scope checks.
import type { RequestHandler, Response } from 'express';
import { authenticate, type ApiKey, type Client, type Scope } from '../../lib/api-keys';
import { StockholdError } from '../../lib/errors';

const bearerPrefix = 'Bearer ';
const tokenLengthMax = 256;

export function authentication(keys: readonly ApiKey[]): RequestHandler {
  return (request, response, next) => {
    const header = request.headers.authorization;
    if (header === undefined || !header.startsWith(bearerPrefix) || header.length > bearerPrefix.length + tokenLengthMax) {
      throw new StockholdError('unauthorized', 'Send an API key as "Authorization: Bearer <secret>"');
    }
    const client = authenticate(keys, header.slice(bearerPrefix.length).trim());
    if (client === undefined) throw new StockholdError('unauthorized', 'Unknown API key');
    response.locals.client = client;
    next();
  };
}

export function clientOf(response: Response): Client {
  return response.locals.client as Client;
}

export function requireScope(...scopes: Scope[]): RequestHandler {
  return (_request, response, next) => {
    const client = clientOf(response);
    if (!scopes.some((scope) => client.scopes.has(scope))) {
      throw new StockholdError('forbidden', `This route needs one of the scopes: ${scopes.join(', ')}`);
    }
    next();
  };
}

/** Fulfillment and admin keys see every reservation; a checkout key sees only its own. */
export function seesAllReservations(client: Client): boolean {
  return client.scopes.has('fulfillment') || client.scopes.has('admin');
}
