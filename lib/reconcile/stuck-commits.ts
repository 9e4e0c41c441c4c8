// Re-drives commits that did not happen: confirmed reservations still confirmed in Redis after a
// grace period (their job was lost, or the Redis step after the ledger commit was), and commit
// or cancel jobs that exhausted their attempts. Re-driving is safe by construction: the ledger
// refuses a second allocation and the Redis steps are fenced.
import type { Job } from 'bullmq';
import { commitJobOf, type CommitJob, type LedgerJob } from '../commits/commit-jobs';
import type { CommitQueue } from '../commits/commit-queue';
import type { Config } from '../config';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { createdAtOfReservationId } from '../random-ids';
import { rejectCartAcrossSlots, releaseCartAcrossSlots } from '../reservations/cart-across-slots';
import { returnLines } from '../scripts/cart-lines';
import type { ReservationService } from '../reservations/reservation-service';
import type { StuckCandidate } from './sku-reconciliation';

const activeStates = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

export class StuckCommits {
  constructor(
    private readonly queue: CommitQueue,
    private readonly reservations: ReservationService,
    private readonly config: Config,
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
  ) {}

  /**
   * Queues again the confirmed reservations older than the grace period, and gives back pinned
   * holds whose reservation never became confirmed (a cart across slots whose confirm crashed
   * after its pins, or lost a race with a release): released ones at once, expired ones once the
   * grace period has passed beyond their expiry (an attempt that pinned them may confirm past
   * the expiry, but not that late). Also those of a rejected reservation (a reject that died
   * before giving every hold back, its job gone), and those whose record Redis no longer has (its
   * primary failed over before the replica had it, or it outlived its retention): once the grace
   * has passed since the reservation was made (its id says when), the ledger has not decided it
   * and no job for it is waiting or running, nobody can confirm or commit it any more. Returns how
   * many of each.
   */
  async requeue(candidates: readonly StuckCandidate[], nowMs: number, dryRun: boolean): Promise<{ requeued: number; pinsReleased: number }> {
    let requeued = 0;
    let pinsReleased = 0;
    for (const candidate of candidates) {
      const reservation = await this.reservations.readFromRedis(candidate.id);
      if (reservation === undefined) {
        if (!(await this.orphaned(candidate, nowMs))) continue;
        if (!dryRun) await returnLines(this.scripts, this.keys, candidate.id, [{ sku: candidate.sku, quantity: candidate.quantity }], 'all');
        pinsReleased += 1;
        continue;
      }
      if (reservation.status === 'rejected') {
        if (!dryRun) await rejectCartAcrossSlots(this.scripts, this.keys, { reservationId: reservation.id, fence: reservation.fence, lines: reservation.lines, retentionMs: this.config.reservationRetentionSeconds * 1000 });
        pinsReleased += 1;
        continue;
      }
      if (reservation.status === 'released' || (reservation.status === 'expired' && nowMs - reservation.expiresAtMs >= this.config.reconcileCommitGraceMs)) {
        if (!dryRun) {
          const released = await releaseCartAcrossSlots(this.scripts, this.keys, reservation.id);
          if (released.kind !== 'released' && released.kind !== 'already') continue;
        }
        pinsReleased += 1;
        continue;
      }
      if (reservation.status !== 'confirmed' || reservation.confirmedAtMs === null) continue;
      if (nowMs - reservation.confirmedAtMs < this.config.reconcileCommitGraceMs) continue;
      const job = commitJobOf(reservation);
      if (await this.requeueJob(reservation.id, job, dryRun)) requeued += 1;
    }
    return { requeued, pinsReleased };
  }

  /** A pinned hold without a record: past the grace since it was made, undecided by the ledger, no job on its way. */
  private async orphaned(candidate: StuckCandidate, nowMs: number): Promise<boolean> {
    if (nowMs - createdAtOfReservationId(candidate.id) < this.config.reconcileCommitGraceMs) return false;
    if ((await this.reservations.readFromLedger(candidate.id)) !== undefined) return false;
    const job = await this.queue.queue.getJob(candidate.id);
    return job === undefined || job === null || !activeStates.has(await job.getState());
  }

  /** Retries jobs that ran out of attempts, at most RECONCILE_FAILED_JOBS_MAX a run. */
  async retryFailed(dryRun: boolean): Promise<number> {
    if (this.config.reconcileFailedJobsMax === 0) return 0;
    const failed: Array<Job<LedgerJob>> = await this.queue.queue.getFailed(0, this.config.reconcileFailedJobsMax - 1);
    let retried = 0;
    for (const job of failed) {
      if (job === undefined || job === null) continue;
      if (!dryRun) await job.retry('failed');
      retried += 1;
    }
    return retried;
  }

  private async requeueJob(jobId: string, job: CommitJob, dryRun: boolean): Promise<boolean> {
    const existing = await this.queue.queue.getJob(jobId);
    const state = existing === undefined ? 'missing' : await existing.getState();
    if (activeStates.has(state)) return false;
    if (dryRun) return true;
    if (state === 'failed') {
      await existing!.retry('failed');
      return true;
    }
    // Completed (its Redis step was lost after the ledger commit) or gone: queue it afresh.
    if (existing !== undefined) await existing.remove();
    await this.queue.add(job);
    return true;
  }
}
