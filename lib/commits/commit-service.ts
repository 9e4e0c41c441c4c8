// The API side of the commit pipeline: confirm (Redis, then a commit job), cancel (a cancel job),
// and waiting a bounded time for the worker to finish either.
import type { Config } from '../config';
import { assert, errors } from '../errors';
import type { ScriptRunner } from '../redis/scripts';
import type { Reservation, ReservationService, ReservationStatus } from '../reservations/reservation-service';
import { commitJobOf } from './commit-jobs';
import type { CommitQueue } from './commit-queue';

export const waitPollIntervalMs = 20;
export const waitSecondsMax = 30;

export class CommitService {
  constructor(
    private readonly scripts: ScriptRunner,
    private readonly reservations: ReservationService,
    private readonly queue: CommitQueue,
    private readonly config: Config,
  ) {}

  /**
   * Pending -> confirmed (atomically, in Redis), then queues its commit job. Confirming again
   * answers the current state and re-queues the job of a still-confirmed reservation (a no-op if
   * BullMQ still has it), so a confirmation whose job was lost can be pushed again by its client.
   */
  async confirm(reservation: Reservation): Promise<Reservation> {
    const reply = await this.scripts.run('confirmReservation', this.reservations.recordAndLineKeys(reservation), [reservation.id]);
    const code = reply[0];
    if (code === 1) {
      const confirmed: Reservation = { ...reservation, status: 'confirmed', fence: Number(reply[1]), confirmedAtMs: Number(reply[2]) };
      await this.queueCommit(confirmed);
      return confirmed;
    }
    if (code === 2) {
      const status = String(reply[1]) as ReservationStatus;
      if (status === 'cancelled') throw errors.reservationCancelled(reservation.id);
      if (status === 'rejected') throw errors.reservationRejected(reservation.id);
      const current = (await this.reservations.readFromRedis(reservation.id)) ?? reservation;
      if (status === 'confirmed') await this.queueCommit(current);
      return current;
    }
    if (code === -1) {
      // Redis has forgotten it: only the ledger's committed or cancelled copy can be left.
      if (reservation.status === 'cancelled') throw errors.reservationCancelled(reservation.id);
      if (reservation.status === 'rejected') throw errors.reservationRejected(reservation.id);
      if (reservation.status === 'committed') return reservation;
      throw errors.reservationNotFound(reservation.id);
    }
    if (code === -2) throw errors.reservationReleased(reservation.id);
    assert(code === -3, `confirmReservation returned ${String(code)}`);
    throw errors.reservationExpired(reservation.id);
  }

  /** Queues the return of a committed reservation's units; cancelling again changes nothing. */
  async cancel(id: string, requestedBy: string): Promise<Reservation> {
    const committed = await this.reservations.readFromLedger(id);
    if (committed === undefined) {
      const live = await this.reservations.readFromRedis(id);
      if (live === undefined) throw errors.reservationNotFound(id);
      // Confirmed: the ledger commit is on its way; a retry shortly after can succeed.
      throw errors.notCommitted(id, live.status, live.status === 'confirmed' ? 1 : undefined);
    }
    if (committed.status === 'cancelled') return committed;
    if (committed.status === 'rejected') throw errors.reservationRejected(id);
    const reply = await this.scripts.run('requestCancel', [this.reservations.recordAndLineKeys(committed)[0] as string], [
      committed.fence,
      committed.clientId,
      committed.customerId ?? '',
      committed.createdAtMs,
      committed.expiresAtMs,
      committed.lines.map((line) => `${line.sku}:${line.quantity}`).join(','),
      this.config.reservationRetentionSeconds * 1000,
    ]);
    if (reply[0] === -1) throw errors.notCommitted(id, String(reply[1]), 1);
    if (reply[0] === 2) return { ...committed, status: 'cancelled' };
    const fence = Number(reply[1]);
    await this.queue.add({ kind: 'cancel', reservationId: id, fence, requestedBy, lines: committed.lines });
    return { ...committed, fence, cancelRequested: true };
  }

  /** Polls until `done` holds for the reservation or `waitMs` passes; returns the last read. */
  async waitFor(id: string, done: (reservation: Reservation) => boolean, waitMs: number): Promise<Reservation | undefined> {
    const deadline = Date.now() + Math.min(waitMs, waitSecondsMax * 1000);
    let current = await this.reservations.read(id);
    while (current !== undefined && !done(current) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, waitPollIntervalMs));
      current = await this.reservations.read(id);
    }
    return current;
  }

  private async queueCommit(reservation: Reservation): Promise<void> {
    await this.queue.add(commitJobOf(reservation));
  }
}
