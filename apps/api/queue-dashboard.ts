// Bull Board at /admin/queues, for admin keys only (Bearer, or HTTP Basic for a browser).
// Every request under the mount path, the board's static assets and its JSON API included, passes
// the same check first; a browser answered with the Basic challenge asks for the key's client id
// and secret once and sends them with every later request of the page.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Router, type Express, type Request, type RequestHandler, type Response } from 'express';
import { authenticate, type ApiKey, type Client } from '../../lib/api-keys';
import { StockholdError } from '../../lib/errors';
import type { Stockhold } from '../../lib/stockhold';

export const queueDashboardPath = '/admin/queues';

/** RFC 7617: the realm names the protection space; the charset tells browsers to send UTF-8. */
export const queueDashboardChallenge = 'Basic realm="Stockhold queues", charset="UTF-8"';

/** Base64 of a 64-character client id, a colon and a 256-character secret fits well inside this. */
const authorizationLengthMax = 1024;
const base64Pattern = /^[A-Za-z0-9+/]+={0,2}$/;
const safeMethods: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The board's page loads its scripts, styles and API from its own origin; the one thing it would
 * fetch from elsewhere is a Google Fonts stylesheet, which this refuses (an admin page should not
 * tell a third party who opens it, and it must work without the internet: the system fonts
 * serve). Inline styles stay allowed because the page's loading placeholder uses them. No frame
 * may embed it, so its buttons cannot be clickjacked.
 */
const contentSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

type Presented = { readonly scheme: 'bearer'; readonly secret: string } | { readonly scheme: 'basic'; readonly user: string; readonly secret: string };

/** The credentials in an Authorization header, or undefined when there are none or they are malformed. */
function presentedCredentials(header: string | undefined): Presented | undefined {
  if (header === undefined || header.length > authorizationLengthMax) return undefined;
  const space = header.indexOf(' ');
  if (space < 0) return undefined;
  // Auth schemes are case-insensitive (RFC 9110, section 11.1).
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'bearer') return value === '' ? undefined : { scheme, secret: value };
  if (scheme !== 'basic' || !base64Pattern.test(value)) return undefined;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  // The user id cannot contain a colon (RFC 7617, section 2); the password may.
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { scheme, user: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
}

/** Equal strings, compared through fixed-length digests so the time says nothing about where they differ. */
function sameText(left: string, right: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(left), digest(right));
}

function clientOf(keys: readonly ApiKey[], presented: Presented): Client | undefined {
  const client = authenticate(keys, presented.secret);
  if (client === undefined) return undefined;
  if (presented.scheme === 'basic' && !sameText(presented.user, client.clientId)) return undefined;
  return client;
}

/**
 * The Basic challenge, with which a browser asks for credentials (sendProblem adds the API's
 * Bearer challenge only to a 401 that has none).
 */
function keepBasicChallenge(response: Response): void {
  response.setHeader('WWW-Authenticate', queueDashboardChallenge);
}

/**
 * A browser sends Basic credentials on every request to the origin, also on one a foreign page
 * makes it send. The board's API changes queues (retry, clean, pause), so a change must come from
 * the board's own page: Sec-Fetch-Site says so where browsers send it, Origin where they do not.
 * Clients that send neither (curl with a Bearer key) are not browsers and are not at risk.
 */
function isCrossSiteChange(request: Request): boolean {
  if (safeMethods.has(request.method)) return false;
  const site = request.get('sec-fetch-site');
  if (site !== undefined) return site !== 'same-origin';
  const origin = request.get('origin');
  if (origin === undefined) return false;
  return !URL.canParse(origin) || new URL(origin).host !== request.get('host');
}

function adminOnly(keys: readonly ApiKey[]): RequestHandler {
  return (request, response, next) => {
    const presented = presentedCredentials(request.headers.authorization);
    const client = presented === undefined ? undefined : clientOf(keys, presented);
    if (client === undefined) {
      keepBasicChallenge(response);
      const detail = presented === undefined
        ? 'Sign in with an admin key: HTTP Basic with its client id and secret, or "Authorization: Bearer <secret>"'
        : 'Unknown API key, or a user that is not the client id of the key';
      next(new StockholdError('unauthorized', detail));
      return;
    }
    response.locals.client = client;
    if (!client.scopes.has('admin')) {
      next(new StockholdError('forbidden', 'The queue dashboard needs a key with the admin scope'));
      return;
    }
    if (isCrossSiteChange(request)) {
      next(new StockholdError('forbidden', 'Queue changes are accepted only from the dashboard page itself'));
      return;
    }
    response.setHeader('Content-Security-Policy', contentSecurityPolicy);
    response.setHeader('X-Content-Type-Options', 'nosniff');
    response.setHeader('Referrer-Policy', 'no-referrer');
    next();
  };
}

/** Bull Board over the service's own queue handles (they already carry its BullMQ prefix). */
function board(stockhold: Stockhold): Express {
  const adapter = new ExpressAdapter();
  adapter.setBasePath(queueDashboardPath);
  createBullBoard({
    queues: stockhold.queues.all().map((queue) => new BullMQAdapter(queue)),
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: 'Stockhold queues' } },
  });
  const app = adapter.getRouter() as Express;
  app.disable('x-powered-by');
  return app;
}

export function queueDashboard(stockhold: Stockhold): Router {
  const router = Router();
  router.use(adminOnly(stockhold.config.apiKeys));
  const boardApp = board(stockhold);
  // An Express app run inside another swaps the request's and response's prototypes for its own;
  // put ours back when it passes a request on (as app.use does for a mounted app), so the 404
  // and problem+json handlers after it run as the service's app.
  router.use((request, response, next) => {
    const outer = request.app as Express;
    boardApp(request, response, (error?: unknown) => {
      Object.setPrototypeOf(request, outer.request);
      Object.setPrototypeOf(response, outer.response);
      next(error);
    });
  });
  return router;
}
