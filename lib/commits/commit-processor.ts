// The worker side: a commit job goes through the group committer (Postgres), then the Redis
// side is finished with commitReservation, fenced. A re-run (BullMQ delivers at least once)
// finds the reservation already in the ledger and still finishes the Redis side, exactly once.
import type { Config } from '../config';
import type { RedisKeys } from '../redis/keys';
import { assert } from '../errors';
import type { ScriptReply, ScriptRunner } from '../redis/scripts';
import type { CancelJob, CommitJob, LedgerJob } from './commit-jobs';
import { GroupCommitter } from './group-committer';
import { LedgerWriter } from './ledger-writer';
import type { Knex } from 'knex';

function entryIdOf(entryIds: ReadonlyMap<string, number>, sku: string): number {
  const id = entryIds.get(sku);
  assert(id !== undefined, `no ledger entry for ${sku}`);
  return id;
}

function describe(reply: ScriptReply): string {
  if (reply[0] === 1) return 'applied';
  if (reply[1] === 'missing') return `redis lost the reservation (${String(reply[2])} SKU states adjusted)`;
  return `unchanged (${String(reply[1])})`;
}

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
    private readonly config: Config,
  ) {
    this.writer = new LedgerWriter(knex);
    this.committer = new GroupCommitter((jobs) => this.writer.commitBatch(jobs), {
      batchMax: config.commitBatchMax,
      waitMs: config.commitBatchWaitMs,
      queuedMax: Math.max(config.commitBatchMax, config.commitConcurrency),
    });
  }

  process(job: LedgerJob): Promise<ProcessResult> {
    return job.kind === 'commit' ? this.commit(job) : this.cancel(job);
  }

  private async commit(job: CommitJob): Promise<ProcessResult> {
    const outcome = await this.committer.submit(job);
    const keys = [this.keys.reservation(job.reservationId)];
    const args: Array<string | number> = [job.reservationId, job.fence, this.config.reservationRetentionSeconds * 1000];
    for (const line of job.lines) {
      keys.push(this.keys.skuState(line.sku), this.keys.skuHolds(line.sku));
      args.push(line.quantity, entryIdOf(outcome.entryIds, line.sku));
    }
    const reply = await this.scripts.run('commitReservation', keys, args);
    return { ledger: outcome.ledger, redis: describe(reply) };
  }

  private async cancel(job: CancelJob): Promise<ProcessResult> {
    const outcome = await this.writer.cancel(job);
    if (outcome.ledger === 'stale') return { ledger: outcome.ledger, redis: 'unchanged (stale fence)' };
    const keys = [this.keys.reservation(job.reservationId)];
    const args: Array<string | number> = [job.fence, this.config.reservationRetentionSeconds * 1000];
    for (const line of job.lines) {
      keys.push(this.keys.skuState(line.sku));
      args.push(line.quantity, entryIdOf(outcome.entryIds, line.sku));
    }
    const reply = await this.scripts.run('applyCancel', keys, args);
    return { ledger: outcome.ledger, redis: describe(reply) };
  }

  close(): Promise<void> {
    return this.committer.close();
  }
}
