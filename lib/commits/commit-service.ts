// The API side of the commit pipeline: confirm (Redis, then a commit job), cancel (a cancel job),
// and waiting a bounded time for the worker to finish either.
import type { Config } from '../config';
import { errors } from '../errors';
import { withRedis } from '../redis/connection';
import { slotOwners, waitForReplicas, type SlotOwners } from '../redis/replication';
import type { Metrics } from '../metrics/metrics';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { ensureCustomer } from '../scripts/customer-admission';
import { confirmReservation, readReservation, requestCancel } from '../scripts/reservation-record';
import { admissionOf } from '../reservations/customer-guard';
import { confirmCartAcrossSlots, repinCart } from '../reservations/cart-across-slots';
import type { Reservation, ReservationService } from '../reservations/reservation-service';
import { commitJobOf } from './commit-jobs';
import type { CommitQueue } from './commit-queue';

export const waitPollIntervalMs = 20;
export const waitSecondsMax = 30;

export class CommitService {
  constructor(
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
    private readonly reservations: ReservationService,
    private readonly queue: CommitQueue,
    private readonly config: Config,
    private readonly metrics: Metrics,
  ) {}

  private waitsStopped = false;

  /**
   * Pending -> confirmed (atomically, in Redis), then queues its commit job. Confirming again
   * answers the current state and re-queues the job of a still-confirmed reservation (a no-op if
   * BullMQ still has it), so a confirmation whose job was lost can be pushed again by its client.
   */
  async confirm(reservation: Reservation, requestId?: string): Promise<Reservation> {
    const written = this.keysWrittenBy(reservation);
    // Who owns each slot before the first write: a failover between a write and its WAIT means
    // the write may be lost, which no WAIT on the new owner can tell.
    const ownersBefore = slotOwners(this.scripts.redis, written);
    const onCluster = this.config.redisClusterNodes !== null;
    // On a Redis Cluster a cart is confirmed slot by slot, pins first (cart-across-slots).
    const result = onCluster ? await confirmCartAcrossSlots(this.scripts, this.keys, reservation.id, { activeMax: this.config.maxActiveHoldsPerCustomer }) : await confirmReservation(this.scripts, this.keys, reservation.id, reservation.lines);
    switch (result.kind) {
      case 'confirmed': {
        const confirmed: Reservation = { ...reservation, status: 'confirmed', fence: result.fence, confirmedAtMs: result.confirmedAtMs };
        this.metrics.transitions.inc({ to: 'confirmed' });
        this.metrics.holdEnded('confirmed', reservation.createdAtMs, result.confirmedAtMs);
        // The replicas first, then the job: a confirm answered 503 here (not acknowledged) gets no
        // job from this attempt; if its pins stand, the reconciler re-queues it after the grace.
        await this.awaitReplicas(written, ownersBefore);
        await this.queueCommit(confirmed, requestId);
        return confirmed;
      }
      case 'already': {
        if (result.status === 'cancelled') throw errors.reservationCancelled(reservation.id);
        if (result.status === 'rejected') throw errors.reservationRejected(reservation.id, (await this.reservations.readFromLedger(reservation.id))?.rejectReason);
        const current = (await this.reservations.readFromRedis(reservation.id)) ?? reservation;
        if (result.status === 'confirmed') {
          // A retry after a 503 below. On a cluster, an earlier attempt's pins may have been lost
          // with a primary before its replica had them: pin again (idempotent) before answering.
          if (onCluster && (await repinCart(this.scripts, this.keys, reservation.id, current.lines)) === 'gone') {
            const decided = await this.reservations.readFromLedger(reservation.id);
            if (decided !== undefined) return decided;
            // Its units may have been sold again: the worker records it rejected (holds lost), and
            // the next retry answers that. Never acknowledged, so nothing acknowledged is lost.
            await this.queueCommit(current, requestId);
            throw errors.notReplicated('confirmation', this.config.redisConfirmReplicas, 0);
          }
          // Its customer's entry too (the guards: lib/reservations/customer-guard.ts), which the
          // same failover may have lost; then answered only once all of it is on the replicas.
          if (onCluster) await this.ensureCustomerEntry(reservation.id);
          await this.awaitReplicas(written, ownersBefore);
          await this.queueCommit(current, requestId);
        }
        return current;
      }
      case 'missing':
        // Redis has forgotten it: only the ledger's committed, cancelled or rejected copy is left.
        if (reservation.status === 'cancelled') throw errors.reservationCancelled(reservation.id);
        if (reservation.status === 'rejected') throw errors.reservationRejected(reservation.id, reservation.rejectReason);
        if (reservation.status === 'committed') return reservation;
        throw errors.reservationNotFound(reservation.id);
      case 'released':
        throw errors.reservationReleased(reservation.id);
      case 'expired':
        throw errors.reservationExpired(reservation.id);
      case 'customer-limit':
        throw errors.customerLimitExceeded(result.sku, result.limit, result.held);
      case 'too-many-active':
        throw errors.tooManyActiveHolds(result.activeMax, result.active);
    }
  }

  /** A confirmed cart the guards admitted: its customer's entry confirmed whatever a failover left of it. */
  private async ensureCustomerEntry(id: string): Promise<void> {
    const record = await readReservation(this.scripts, this.keys, id);
    if (record === undefined || record.customerId === null || !record.admitted || record.status !== 'confirmed') return;
    const customer = { clientId: record.clientId, customerId: record.customerId };
    await ensureCustomer(this.scripts, this.keys, customer, id, record.expiresAtMs, admissionOf(record.lines, new Map()).lines);
  }

  /** Queues the return of a committed reservation's units; cancelling again changes nothing. */
  async cancel(id: string, requestedBy: string, requestId?: string): Promise<Reservation> {
    const committed = await this.reservations.readFromLedger(id);
    if (committed === undefined) {
      const live = await this.reservations.readFromRedis(id);
      if (live === undefined) throw errors.reservationNotFound(id);
      // Confirmed: the ledger commit is on its way; a retry shortly after can succeed.
      throw errors.notCommitted(id, live.status, live.status === 'confirmed' ? 1 : undefined);
    }
    if (committed.status === 'cancelled') return committed;
    if (committed.status === 'rejected') throw errors.reservationRejected(id, committed.rejectReason);
    const result = await requestCancel(this.scripts, this.keys, {
      id,
      fence: committed.fence,
      clientId: committed.clientId,
      customerId: committed.customerId,
      createdAtMs: committed.createdAtMs,
      expiresAtMs: committed.expiresAtMs,
      lines: committed.lines,
      retentionMs: this.config.reservationRetentionSeconds * 1000,
    });
    if (result.kind === 'not-committed') throw errors.notCommitted(id, result.status, 1);
    if (result.kind === 'cancelled') return { ...committed, status: 'cancelled' };
    await this.queue.add({ kind: 'cancel', reservationId: id, fence: result.fence, requestedBy, lines: committed.lines, ...(requestId === undefined ? {} : { requestId }) });
    return { ...committed, fence: result.fence, cancelRequested: true };
  }

  /**
   * Ends every `Prefer: wait` early, now and from now on: the process is stopping, and a waiting
   * request answers what it has (202 confirmed) within the shutdown budget instead of holding the
   * server open for up to 30 s.
   */
  stopWaiting(): void {
    this.waitsStopped = true;
  }

  /** Polls until `done` holds for the reservation or `waitMs` passes (or waits are stopped); returns the last read. */
  async waitFor(id: string, done: (reservation: Reservation) => boolean, waitMs: number): Promise<Reservation | undefined> {
    const deadline = Date.now() + Math.min(waitMs, waitSecondsMax * 1000);
    let current = await this.reservations.read(id);
    while (current !== undefined && !done(current) && Date.now() < deadline && !this.waitsStopped) {
      await new Promise((resolve) => setTimeout(resolve, waitPollIntervalMs));
      current = await this.reservations.read(id);
    }
    return current;
  }

  /** The keys a confirm writes: the record's and, on a cluster, each SKU's (its pinned holds) and its customer's entries. */
  private keysWrittenBy(reservation: Reservation): string[] {
    const written = [this.keys.reservation(reservation.id), ...reservation.lines.map((line) => this.keys.skuState(line.sku))];
    if (this.config.redisClusterNodes !== null && reservation.customerId !== null) written.push(this.keys.customerEntries(reservation.clientId, reservation.customerId));
    return written;
  }

  /**
   * With REDIS_CONFIRM_REPLICAS set, a confirmation is answered only once that many replicas of
   * every primary it wrote have it (lib/redis/replication.ts: a witness and WAIT pipelined on
   * each primary, side by side; a slot that changed owner since `ownersBefore` counts 0). A
   * failover right after cannot lose it, nor turn a pinned hold back into one that expires. Short
   * of that within REDIS_CONFIRM_WAIT_MS: 503 with Retry-After; the confirm is applied on the
   * primaries, and a retry finds it confirmed and waits again.
   */
  private async awaitReplicas(written: readonly string[], ownersBefore: SlotOwners): Promise<void> {
    const wanted = this.config.redisConfirmReplicas;
    if (wanted === 0) return;
    const acknowledged = await withRedis(() => waitForReplicas(this.scripts.redis, { keys: written, replicas: wanted, timeoutMs: this.config.redisConfirmWaitMs, witness: (key) => this.keys.replicationWitness(key), ownersBefore }));
    if (acknowledged < wanted) throw errors.notReplicated('confirmation', wanted, acknowledged);
  }

  private async queueCommit(reservation: Reservation, requestId: string | undefined): Promise<void> {
    await this.queue.add(commitJobOf(reservation, requestId));
  }
}
