// What travels through the commit queue. One BullMQ queue carries both kinds; a commit job's id
// is the reservation id and a cancel job's id is "cancel-<id>", so queueing either twice while it
// is still known to BullMQ adds nothing.
import { assert } from '../errors';
import { queueNames } from '../queues';
import type { Reservation, ReservationLine } from '../reservations/reservation-service';

export const commitQueueName = queueNames.commits;

export interface CommitJob {
  readonly kind: 'commit';
  readonly reservationId: string;
  readonly fence: number;
  readonly clientId: string;
  readonly customerId: string | null;
  readonly lines: readonly ReservationLine[];
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  readonly confirmedAtMs: number;
  /** The API request that confirmed it, for following one reservation through the logs. */
  readonly requestId?: string;
}

export interface CancelJob {
  readonly kind: 'cancel';
  readonly reservationId: string;
  readonly fence: number;
  /** The client that asked for the cancellation, recorded on the ledger entries. */
  readonly requestedBy: string;
  readonly lines: readonly ReservationLine[];
  readonly requestId?: string;
}

export type LedgerJob = CommitJob | CancelJob;

export function jobIdOf(job: LedgerJob): string {
  return job.kind === 'commit' ? job.reservationId : `cancel-${job.reservationId}`;
}

/** The commit job of a confirmed reservation, carrying its fence. */
export function commitJobOf(reservation: Reservation, requestId?: string): CommitJob {
  assert(reservation.confirmedAtMs !== null, 'a confirmed reservation has its confirmation time');
  return {
    kind: 'commit',
    reservationId: reservation.id,
    fence: reservation.fence,
    clientId: reservation.clientId,
    customerId: reservation.customerId,
    lines: reservation.lines,
    createdAtMs: reservation.createdAtMs,
    expiresAtMs: reservation.expiresAtMs,
    confirmedAtMs: reservation.confirmedAtMs,
    ...(requestId === undefined ? {} : { requestId }),
  };
}
