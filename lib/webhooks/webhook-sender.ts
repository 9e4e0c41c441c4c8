// One delivery attempt of one webhook job: a signed POST (a fresh timestamp per attempt) with a
// timeout, no redirects followed, and the attempt's result counted ('delivered', 'failed' when
// BullMQ will retry it, 'dead' when it was the last). The caller (the webhook worker) logs the
// report and throws for anything but 'delivered', which is what makes BullMQ retry.
import type { Config } from '../config';
import type { Metrics, WebhookResult } from '../metrics/metrics';
import { signatureHeader, signPayload } from './signature';
import { urlKeyOf, type WebhookJob } from './webhook-jobs';

export const eventIdHeader = 'Stockhold-Event-Id';
export const webhookUserAgent = 'Stockhold-Webhooks/1';

export type AttemptOutcome =
  /** The receiver answered; only a 2xx is a delivery (a 3xx is not followed). */
  | { readonly kind: 'answered'; readonly status: number; readonly delivered: boolean }
  /** No answer: connection refused or reset, DNS, TLS, the timeout, or the shutdown abort. */
  | { readonly kind: 'unreachable'; readonly reason: string }
  /** The job's URL is no longer in WEBHOOK_URLS: nobody to deliver to, ever. */
  | { readonly kind: 'unknown-receiver' };

export interface AttemptReport {
  readonly result: WebhookResult;
  readonly outcome: AttemptOutcome;
  /** 1 for the first attempt. */
  readonly attempt: number;
  readonly durationMs: number;
}

interface Receiver {
  /** The URL without user-info (fetch refuses URLs with credentials). */
  readonly url: string;
  /** `Basic …` when the configured URL carried user-info. */
  readonly authorization: string | undefined;
}

function receiverOf(configured: string): Receiver {
  const url = new URL(configured);
  if (url.username === '' && url.password === '') return { url: url.toString(), authorization: undefined };
  const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  url.username = '';
  url.password = '';
  return { url: url.toString(), authorization: `Basic ${Buffer.from(credentials).toString('base64')}` };
}

function unreachableReason(error: unknown, timeoutMs: number): string {
  if (!(error instanceof Error)) return 'unknown error';
  if (error.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  if (error.name === 'AbortError') return 'aborted (shutting down)';
  // Node's fetch says "fetch failed" and puts the socket error in `cause` (ECONNREFUSED, …).
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
  if (typeof cause?.code === 'string') return cause.code;
  return typeof cause?.message === 'string' ? cause.message : error.message;
}

export class WebhookSender {
  private readonly receivers: ReadonlyMap<string, Receiver>;

  constructor(
    private readonly config: Pick<Config, 'webhookUrls' | 'webhookSecret' | 'webhookTimeoutMs'>,
    private readonly metrics: Metrics,
  ) {
    this.receivers = new Map(config.webhookUrls.map((url) => [urlKeyOf(url), receiverOf(url)]));
  }

  /**
   * Attempt `attempt` of `attemptsMax` (BullMQ's attempts option). `stop` aborts the request
   * when the process shuts down before the receiver answered.
   */
  async attempt(job: WebhookJob, attempt: number, attemptsMax: number, stop?: AbortSignal): Promise<AttemptReport> {
    const startedAt = Date.now();
    const outcome = await this.post(job, stop);
    const delivered = outcome.kind === 'answered' && outcome.delivered;
    const final = attempt >= attemptsMax || outcome.kind === 'unknown-receiver';
    const result: WebhookResult = delivered ? 'delivered' : final ? 'dead' : 'failed';
    this.metrics.webhookDeliveries.inc({ result });
    return { result, outcome, attempt, durationMs: Date.now() - startedAt };
  }

  private async post(job: WebhookJob, stop: AbortSignal | undefined): Promise<AttemptOutcome> {
    const receiver = this.receivers.get(job.urlKey);
    if (receiver === undefined) return { kind: 'unknown-receiver' };
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      'User-Agent': webhookUserAgent,
      [eventIdHeader]: String(job.eventId),
      [signatureHeader]: signPayload(this.config.webhookSecret, job.body, Math.floor(Date.now() / 1000)),
    };
    if (receiver.authorization !== undefined) headers.Authorization = receiver.authorization;
    const timeout = AbortSignal.timeout(this.config.webhookTimeoutMs);
    try {
      const response = await fetch(receiver.url, {
        method: 'POST',
        headers,
        body: job.body,
        redirect: 'manual',
        signal: stop === undefined ? timeout : AbortSignal.any([timeout, stop]),
      });
      // The answer's body is not read: cancelling it frees the connection at once.
      await response.body?.cancel().catch(() => undefined);
      return { kind: 'answered', status: response.status, delivered: response.status >= 200 && response.status < 300 };
    } catch (error) {
      return { kind: 'unreachable', reason: unreachableReason(error, this.config.webhookTimeoutMs) };
    }
  }
}
