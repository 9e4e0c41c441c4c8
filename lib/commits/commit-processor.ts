// The worker side: a commit job goes through the group committer (Postgres), its allocation
// entries are applied to each SKU's Redis state (lib/stock/ledger-projection.ts: in ledger order,
// exactly once, removing the holds in the same step), and the record is marked committed,
// fenced. A re-run (BullMQ delivers at least once) finds the reservation already in the ledger,
// applies nothing twice, and still finishes. A reservation the ledger cannot allocate ends
// rejected: recorded in the ledger, then its holds released in Redis. On a Redis Cluster the
// cart's pins are checked first (and, with REDIS_CONFIRM_REPLICAS, known to be on the replicas):
// a cart whose holds a failover took is rejected without an allocation.
import type { Knex } from 'knex';
import type { Config } from '../config';
import { Metrics } from '../metrics/metrics';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import type { ProjectedEntry } from '../scripts/apply-entries';
import { forgetCustomer } from '../scripts/customer-admission';
import { finishReservation } from '../scripts/finish-reservation';
import { rejectReservation } from '../scripts/reject-reservation';
import { rejectCartAcrossSlots, repinCart } from '../reservations/cart-across-slots';
import type { LedgerProjection } from '../stock/ledger-projection';
import type { CancelJob, CommitJob, LedgerJob } from './commit-jobs';
import { GroupCommitter } from './group-committer';
import { LedgerShortError, LedgerWriter, type CommitOutcome } from './ledger-writer';

export interface ProcessResult {
  readonly ledger: string;
  readonly redis: string;
}

export class CommitProcessor {
  private readonly writer: LedgerWriter;
  readonly committer: GroupCommitter;

  constructor(
    knex: Knex,
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
    private readonly projection: LedgerProjection,
    private readonly config: Config,
    private readonly metrics: Metrics = new Metrics({ defaultMetrics: false }),
  ) {
    this.writer = new LedgerWriter(knex);
    this.committer = new GroupCommitter((jobs) => {
      metrics.commitBatchSize.observe(jobs.length);
      return this.writer.commitBatch(jobs);
    }, {
      batchMax: config.commitBatchMax,
      waitMs: config.commitBatchWaitMs,
      queuedMax: Math.max(config.commitBatchMax, config.commitConcurrency),
    });
  }

  process(job: LedgerJob): Promise<ProcessResult> {
    return job.kind === 'commit' ? this.commit(job) : this.cancel(job);
  }

  private async submit(job: CommitJob): Promise<CommitOutcome> {
    try {
      return await this.committer.submit(job);
    } catch (error) {
      if (!(error instanceof LedgerShortError)) throw error;
      // Alone in its batch and still short: check again under fresh locks (a receipt may have
      // landed) and commit, or record the rejection.
      const [outcome] = await this.writer.commitBatch([job], { rejectShort: true });
      return outcome!;
    }
  }

  /**
   * On a cluster, before the ledger allocates: every hold of the cart still pinned (a pin a
   * failover lost is put back while its hold lives). True when a hold is gone and the ledger has
   * not decided the reservation: its units may have been sold again, so it must not be allocated.
   * Only a confirm never acknowledged can get here: an acknowledged one was answered after its
   * pins were on the replicas. (Not waited for here: that the pins of such a confirm, re-queued by
   * the reconciler, are on the replicas before the ledger allocates; docs/design.md, "Redis
   * Cluster", open findings.)
   */
  private async holdsLost(job: CommitJob): Promise<boolean> {
    if (this.config.redisClusterNodes === null) return false;
    if ((await repinCart(this.scripts, this.keys, job.reservationId, job.lines)) === 'pinned') return false;
    return (await this.writer.statusOf(job.reservationId)) === undefined;
  }

  private async commit(job: CommitJob): Promise<ProcessResult> {
    const outcome = (await this.holdsLost(job)) ? await this.writer.rejectHoldsLost(job) : await this.submit(job);
    const retentionMs = this.config.reservationRetentionSeconds * 1000;
    if (outcome.ledger === 'rejected') {
      const rejected =
        this.config.redisClusterNodes === null
          ? await rejectReservation(this.scripts, this.keys, { reservationId: job.reservationId, fence: job.fence, lines: job.lines, retentionMs })
          : await rejectCartAcrossSlots(this.scripts, this.keys, { reservationId: job.reservationId, fence: job.fence, lines: job.lines, retentionMs });
      if (rejected.kind === 'rejected') this.metrics.transitions.inc({ to: 'rejected' });
      await this.forgetCustomerEntry(job);
      return { ledger: 'rejected', redis: rejected.kind === 'rejected' ? `rejected, ${rejected.unitsReturned} units released` : `unchanged (${rejected.status})` };
    }
    if (outcome.ledger === 'committed') {
      // Counted once, when this run wrote the ledger (a re-run finds it already committed), and
      // before the Redis steps, which may fail and leave the rest to the re-run.
      this.metrics.transitions.inc({ to: 'committed' });
      this.metrics.commitLag.observe(Math.max(0, Date.now() - job.confirmedAtMs) / 1000);
    }
    await this.applyAll(outcome.entries);
    const finished = await finishReservation(this.scripts, this.keys, 'commit', job.reservationId, job.fence, retentionMs);
    await this.forgetCustomerEntry(job);
    return { ledger: outcome.ledger, redis: finished.kind === 'finished' ? 'applied' : `unchanged (${finished.status})` };
  }

  /**
   * On a cluster, a committed or rejected reservation stops counting for its customer's guards
   * (lib/reservations/customer-guard.ts). A run that dies before this leaves the entry counting
   * until a refused admission finds its record ended.
   */
  private async forgetCustomerEntry(job: CommitJob): Promise<void> {
    if (this.config.redisClusterNodes === null || job.customerId === null) return;
    await forgetCustomer(this.scripts, this.keys, { clientId: job.clientId, customerId: job.customerId }, [{ id: job.reservationId, value: '*' }]);
  }

  private async cancel(job: CancelJob): Promise<ProcessResult> {
    const outcome = await this.writer.cancel(job);
    if (outcome.ledger === 'stale') return { ledger: outcome.ledger, redis: 'unchanged (stale fence)' };
    if (outcome.ledger === 'cancelled') this.metrics.transitions.inc({ to: 'cancelled' });
    await this.applyAll(outcome.entries);
    const finished = await finishReservation(this.scripts, this.keys, 'cancel', job.reservationId, job.fence, this.config.reservationRetentionSeconds * 1000);
    return { ledger: outcome.ledger, redis: finished.kind === 'finished' ? 'applied' : `unchanged (${finished.status})` };
  }

  /** Applies each SKU's entries in position order (different SKUs side by side). */
  private async applyAll(entries: readonly ProjectedEntry[]): Promise<void> {
    const bySku = new Map<string, ProjectedEntry[]>();
    for (const entry of entries) {
      const skuEntries = bySku.get(entry.sku) ?? [];
      skuEntries.push(entry);
      bySku.set(entry.sku, skuEntries);
    }
    await Promise.all([...bySku].map(([sku, skuEntries]) => this.projection.apply(sku, skuEntries.sort((a, b) => a.seq - b.seq))));
  }

  close(): Promise<void> {
    return this.committer.close();
  }
}
