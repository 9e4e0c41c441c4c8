// The chaos clients: each loops until told to stop, drawing its next operation from its own
// seeded stream and acting on what it has been told so far (a reservation it holds can be
// confirmed or released, a committed one cancelled, an acknowledged key replayed). SKUs are kept
// near sold-out, so that units Redis offers beyond the ledger are sold at once and show up as a
// confirm the ledger cannot commit.
import { attemptOf, attemptsMax, isTransient, outcomeOf, retryBudgetMs, retryDelayMs, send, type ApiEndpoint, type Call, type Reply } from './http-client';
import type { Line, Operation, OperationKind } from './history';
import type { Random } from './random';

export interface Secrets {
  readonly checkout: string;
  readonly fulfillment: string;
  readonly admin: string;
}

export class Recorder {
  readonly operations: Operation[] = [];
  inFlight = 0;

  /** Runs one operation to a final outcome, retrying transient failures, and records it. */
  async run(apis: readonly ApiEndpoint[], random: Random, operation: Operation, call: Call): Promise<Operation> {
    this.operations.push(operation);
    this.inFlight += 1;
    try {
      const deadline = operation.invokeMs + retryBudgetMs;
      let reply: Reply | undefined;
      for (let attempt = 0; attempt < attemptsMax; attempt += 1) {
        const api = random.int(0, apis.length - 1);
        const startMs = Date.now();
        reply = await send(apis[api]!, call);
        operation.attempts.push(attemptOf(reply, api, startMs));
        if (!isTransient(reply) || Date.now() >= deadline) break;
        await sleep(retryDelayMs(reply, attempt, random.next()));
      }
      settle(operation, reply!);
      return operation;
    } finally {
      this.inFlight -= 1;
    }
  }

  next(client: string, kind: OperationKind, call: Call, about: Partial<Operation> = {}): Operation {
    return {
      index: this.operations.length,
      client,
      kind,
      invokeMs: Date.now(),
      completeMs: 0,
      method: call.method,
      path: call.path,
      ...(call.body === undefined ? {} : { body: call.body }),
      ...(call.idempotencyKey === undefined ? {} : { idempotencyKey: call.idempotencyKey }),
      outcome: 'unknown',
      status: null,
      attempts: [],
      ...about,
    };
  }
}

function settle(operation: Operation, reply: Reply): void {
  operation.completeMs = Date.now();
  operation.outcome = outcomeOf(reply);
  operation.status = reply.status;
  if (typeof reply.body?.code === 'string') operation.code = reply.body.code;
  if (operation.outcome !== 'ok') return;
  const body = reply.body ?? {};
  if (typeof body.id === 'string') operation.reservationId = body.id;
  if (typeof body.status === 'string') operation.resultStatus = body.status;
  if (typeof body.onHand === 'number') operation.resultOnHand = body.onHand;
  if (typeof body.expiresAt === 'string' && Number.isFinite(Date.parse(body.expiresAt))) operation.expiresAtMs = Date.parse(body.expiresAt);
  operation.replayed = reply.headers['idempotent-replayed'] === 'true';
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface Held {
  readonly id: string;
  readonly lines: readonly Line[];
  state: 'pending' | 'confirmed' | 'committed';
}

interface Acknowledged {
  readonly key: string;
  readonly body: unknown;
  readonly sku?: string;
  readonly delta?: number;
  readonly lines?: readonly Line[];
  readonly reservationId?: string;
}

/** Reservations and keys one client remembers, at most. */
export const rememberedMax = 40;

const weights: Record<OperationKind, number> = {
  reserve: 35,
  confirm: 20,
  release: 6,
  cancel: 5,
  adjust: 8,
  'replay-reserve': 4,
  'replay-adjust': 3,
  'set-stock': 2,
  'read-sku': 10,
  'read-reservation': 7,
};

export interface WorkloadSetting {
  readonly apis: readonly ApiEndpoint[];
  readonly skus: readonly string[];
  readonly secrets: Secrets;
  readonly recorder: Recorder;
  readonly runLabel: string;
  readonly holdTtlSecondsMax: number;
  /** Customers carts are made for, shared by every client (absent: carts without a customer). */
  readonly customers?: Customers;
}

/**
 * Who a cart is for: a share of carts comes from a few hoarding bots, whose carts race each other
 * into the flash-sale guards all the time; the rest from many shoppers, who rarely meet a cap.
 */
export interface Customers {
  readonly bots: readonly string[];
  readonly shoppers: readonly string[];
  readonly botShare: number;
}

export class ChaosClient {
  private readonly held: Held[] = [];
  private readonly reserveKeys: Acknowledged[] = [];
  private readonly adjustKeys: Acknowledged[] = [];
  private counter = 0;

  constructor(readonly name: string, private readonly random: Random, private readonly setting: WorkloadSetting) {}

  async loop(stopped: () => boolean): Promise<void> {
    while (!stopped()) await this.step(this.random.weighted(weights));
  }

  private key(): string {
    this.counter += 1;
    return `${this.setting.runLabel}-${this.name}-${this.counter}`;
  }

  private remember<T>(list: T[], item: T): void {
    list.push(item);
    if (list.length > rememberedMax) list.shift();
  }

  private take(state: Held['state'][]): Held | undefined {
    const candidates = this.held.filter((held) => state.includes(held.state));
    return candidates.length === 0 ? undefined : this.random.pick(candidates);
  }

  private forget(held: Held): void {
    const index = this.held.indexOf(held);
    if (index >= 0) this.held.splice(index, 1);
  }

  private run(kind: OperationKind, call: Call, about: Partial<Operation> = {}): Promise<Operation> {
    const { recorder, apis } = this.setting;
    return recorder.run(apis, this.random, recorder.next(this.name, kind, call, about), call);
  }

  async step(kind: OperationKind): Promise<void> {
    switch (kind) {
      case 'confirm': return this.confirm();
      case 'release': return this.release();
      case 'cancel': return this.cancel();
      case 'adjust': return this.adjust();
      case 'replay-reserve': return this.replayReserve();
      case 'replay-adjust': return this.replayAdjust();
      case 'set-stock': return this.setStock();
      case 'read-sku': return this.readSku();
      case 'read-reservation': return this.readReservation();
      default: return this.reserve();
    }
  }

  private cart(): Line[] {
    const count = this.random.chance(0.4) ? 1 : this.random.int(2, 3);
    const skus = new Set<string>();
    while (skus.size < Math.min(count, this.setting.skus.length)) skus.add(this.random.pick(this.setting.skus));
    return [...skus].sort().map((sku) => ({ sku, quantity: this.random.int(1, 3) }));
  }

  private async reserve(): Promise<void> {
    const lines = this.cart();
    const customers = this.setting.customers;
    const customerId = customers === undefined ? undefined : this.random.pick(this.random.chance(customers.botShare) ? customers.bots : customers.shoppers);
    const body = { lines, ttlSeconds: this.random.int(2, this.setting.holdTtlSecondsMax), ...(customerId === undefined ? {} : { customerId }) };
    const key = this.key();
    const call: Call = { method: 'POST', path: '/v1/reservations', secret: this.setting.secrets.checkout, body, idempotencyKey: key };
    const operation = await this.run('reserve', call, { lines, ...(customerId === undefined ? {} : { customerId }) });
    if (operation.outcome !== 'ok' || operation.reservationId === undefined) return;
    this.remember(this.held, { id: operation.reservationId, lines, state: 'pending' });
    this.remember(this.reserveKeys, { key, body, lines, reservationId: operation.reservationId });
  }

  private async replayReserve(): Promise<void> {
    if (this.reserveKeys.length === 0) return this.reserve();
    const acknowledged = this.random.pick(this.reserveKeys);
    const call: Call = { method: 'POST', path: '/v1/reservations', secret: this.setting.secrets.checkout, body: acknowledged.body, idempotencyKey: acknowledged.key };
    await this.run('replay-reserve', call, { lines: acknowledged.lines!, reservationId: acknowledged.reservationId! });
  }

  private async confirm(): Promise<void> {
    const held = this.take(['pending']) ?? this.take(['confirmed']);
    if (held === undefined) return this.reserve();
    const headers: Record<string, string> = this.random.chance(0.2) ? { prefer: 'wait=1' } : {};
    const call: Call = { method: 'POST', path: `/v1/reservations/${held.id}/confirm`, secret: this.setting.secrets.checkout, headers };
    const operation = await this.run('confirm', call, { reservationId: held.id, lines: held.lines });
    if (operation.outcome === 'fail') this.forget(held);
    if (operation.outcome === 'ok') held.state = operation.resultStatus === 'committed' ? 'committed' : 'confirmed';
  }

  private async release(): Promise<void> {
    const held = this.take(['pending']);
    if (held === undefined) return this.reserve();
    const call: Call = { method: 'DELETE', path: `/v1/reservations/${held.id}`, secret: this.setting.secrets.checkout };
    const operation = await this.run('release', call, { reservationId: held.id, lines: held.lines });
    if (operation.outcome !== 'unknown') this.forget(held);
  }

  private async cancel(): Promise<void> {
    const held = this.take(['committed', 'confirmed']);
    if (held === undefined) return this.readSku();
    const call: Call = { method: 'POST', path: `/v1/reservations/${held.id}/cancel`, secret: this.setting.secrets.fulfillment };
    const operation = await this.run('cancel', call, { reservationId: held.id, lines: held.lines });
    if (operation.outcome === 'ok') this.forget(held);
  }

  private async adjust(): Promise<void> {
    const sku = this.random.pick(this.setting.skus);
    const delta = this.random.chance(0.6) ? this.random.int(1, 8) : -this.random.int(1, 3);
    const body = { delta, reason: 'chaos' };
    const key = this.key();
    const call: Call = { method: 'POST', path: `/v1/skus/${sku}/adjustments`, secret: this.setting.secrets.admin, body, idempotencyKey: key };
    const operation = await this.run('adjust', call, { sku, delta });
    if (operation.outcome === 'ok') this.remember(this.adjustKeys, { key, body, sku, delta });
  }

  private async replayAdjust(): Promise<void> {
    if (this.adjustKeys.length === 0) return this.adjust();
    const acknowledged = this.random.pick(this.adjustKeys);
    const call: Call = { method: 'POST', path: `/v1/skus/${acknowledged.sku!}/adjustments`, secret: this.setting.secrets.admin, body: acknowledged.body, idempotencyKey: acknowledged.key };
    await this.run('replay-adjust', call, { sku: acknowledged.sku!, delta: acknowledged.delta! });
  }

  private async setStock(): Promise<void> {
    const sku = this.random.pick(this.setting.skus);
    const onHand = this.random.int(0, 15);
    const call: Call = { method: 'PUT', path: `/v1/skus/${sku}/stock`, secret: this.setting.secrets.admin, body: { onHand } };
    await this.run('set-stock', call, { sku, onHandTarget: onHand });
  }

  private async readSku(): Promise<void> {
    const sku = this.random.pick(this.setting.skus);
    await this.run('read-sku', { method: 'GET', path: `/v1/skus/${sku}`, secret: this.setting.secrets.checkout }, { sku });
  }

  private async readReservation(): Promise<void> {
    const held = this.take(['pending', 'confirmed', 'committed']);
    if (held === undefined) return this.readSku();
    const call: Call = { method: 'GET', path: `/v1/reservations/${held.id}`, secret: this.setting.secrets.checkout };
    await this.run('read-reservation', call, { reservationId: held.id });
  }

  /** A burst of stock changes to one SKU, spread over every API process at once. */
  async stockRace(sku: string, count: number): Promise<void> {
    const changes: Array<Promise<unknown>> = [];
    for (let index = 0; index < count; index += 1) changes.push(this.random.chance(0.2) ? this.setStockOf(sku) : this.adjustOf(sku));
    await Promise.all(changes);
  }

  private adjustOf(sku: string): Promise<Operation> {
    const delta = this.random.chance(0.5) ? this.random.int(1, 6) : -this.random.int(1, 4);
    const call: Call = { method: 'POST', path: `/v1/skus/${sku}/adjustments`, secret: this.setting.secrets.admin, body: { delta, reason: 'race' }, idempotencyKey: this.key() };
    return this.run('adjust', call, { sku, delta });
  }

  private setStockOf(sku: string): Promise<Operation> {
    const onHand = this.random.int(0, 15);
    return this.run('set-stock', { method: 'PUT', path: `/v1/skus/${sku}/stock`, secret: this.setting.secrets.admin, body: { onHand } }, { sku, onHandTarget: onHand });
  }
}
