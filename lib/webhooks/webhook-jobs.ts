// What one webhook delivery job carries, and its deterministic id. A job is one (event, receiver)
// pair; its id "<eventId>.<urlKey>" makes a second add of the same pair (a dispatcher that crashed
// before moving its cursor) a no-op while BullMQ still knows the job.
//
// The job names its receiver by `urlKey` (a hash of the configured URL), never by the URL itself:
// a URL may carry credentials or a token, and job data is shown in the queue dashboard. `target`
// is the URL without credentials or query string, for logs and the dashboard.
import { createHash } from 'node:crypto';
import type { EventType, StockholdEvent } from '../events/outbox';

export interface WebhookJob {
  readonly eventId: number;
  readonly eventType: EventType;
  readonly urlKey: string;
  readonly target: string;
  /** The exact bytes every attempt sends and signs: `{"id","type","occurredAt","data"}`. */
  readonly body: string;
  /** The API request behind the event, when there was one (for following it in the logs). */
  readonly requestId?: string;
}

/** Hex characters of the URL's SHA-256 kept in the key: 64 bits, collisions among 16 URLs are not a concern. */
export const urlKeyLength = 16;

export function urlKeyOf(url: string): string {
  return createHash('sha256').update(url).digest('hex').slice(0, urlKeyLength);
}

/** BullMQ job ids must not contain ':' and must not be integers; this is neither. */
export function webhookJobId(eventId: number, urlKey: string): string {
  return `${eventId}.${urlKey}`;
}

/** The URL as it may be logged: scheme, host, port and path; no user-info, query or fragment. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return '(unparseable url)';
  }
}

/** The delivered body: exactly what GET /v1/events lists for the event. */
export function eventBody(event: StockholdEvent): string {
  return JSON.stringify({ id: event.id, type: event.type, occurredAt: event.occurredAt, data: event.data });
}

export function webhookJobOf(event: StockholdEvent, url: string, requestId: string | null): WebhookJob {
  const job: WebhookJob = { eventId: event.id, eventType: event.type, urlKey: urlKeyOf(url), target: redactUrl(url), body: eventBody(event) };
  return requestId === null ? job : { ...job, requestId };
}
