// Group commit: jobs processed concurrently hand their commits to one in-process committer,
// which writes up to `batchMax` of them in one Postgres transaction, at most `waitMs` after the
// first arrived, and resolves each job's promise when its batch has committed. One flush runs at
// a time; what arrives meanwhile forms the next batch. A batch that fails for a reason other
// than Postgres being unreachable is split and retried one by one, so one bad reservation fails
// only its own job.
import { assert } from '../errors';
import { isPostgresUnavailable } from '../postgres/connection';
import type { CommitJob } from './commit-jobs';
import type { CommitOutcome } from './ledger-writer';

export interface GroupCommitterOptions {
  readonly batchMax: number;
  readonly waitMs: number;
  /** Submissions waiting for a batch, at most: past it, submit refuses (the job retries later). */
  readonly queuedMax: number;
}

type Writer = (jobs: readonly CommitJob[]) => Promise<CommitOutcome[]>;

interface Waiting {
  readonly job: CommitJob;
  resolve(outcome: CommitOutcome): void;
  reject(error: unknown): void;
}

export class GroupCommitter {
  private waiting: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing = false;
  private closed = false;

  constructor(
    private readonly write: Writer,
    private readonly options: GroupCommitterOptions,
  ) {
    assert(options.batchMax >= 1 && options.queuedMax >= options.batchMax, 'batchMax >= 1 and queuedMax >= batchMax');
  }

  submit(job: CommitJob): Promise<CommitOutcome> {
    if (this.closed) return Promise.reject(new Error('group committer is closed'));
    if (this.waiting.length >= this.options.queuedMax) return Promise.reject(new Error(`group committer is full (${this.options.queuedMax} waiting)`));
    // A reservation already waiting (a duplicate delivery) rides on the same outcome.
    const twin = this.waiting.find((waiting) => waiting.job.reservationId === job.reservationId);
    const promise = new Promise<CommitOutcome>((resolve, reject) => {
      if (twin !== undefined) {
        const { resolve: resolveTwin, reject: rejectTwin } = twin;
        twin.resolve = (outcome) => {
          resolveTwin(outcome);
          resolve({ ...outcome, ledger: 'already-committed' });
        };
        twin.reject = (error) => {
          rejectTwin(error);
          reject(error);
        };
        return;
      }
      this.waiting.push({ job, resolve, reject });
    });
    this.schedule();
    return promise;
  }

  /** Flushes what is waiting and refuses new work. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.waiting.length > 0 || this.flushing) {
      if (!this.flushing) await this.flush();
      else await new Promise((resolve) => setTimeout(resolve, this.options.waitMs + 1));
    }
  }

  private schedule(): void {
    if (this.flushing) return;
    if (this.waiting.length >= this.options.batchMax) {
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = undefined;
      void this.flush();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.options.waitMs);
    }
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.waiting.length === 0) return;
    this.flushing = true;
    const batch = this.waiting.splice(0, this.options.batchMax);
    try {
      await this.commit(batch);
    } finally {
      this.flushing = false;
      if (this.waiting.length > 0) this.schedule();
    }
  }

  private async commit(batch: Waiting[]): Promise<void> {
    try {
      const outcomes = await this.write(batch.map((waiting) => waiting.job));
      batch.forEach((waiting, index) => waiting.resolve(outcomes[index] as CommitOutcome));
    } catch (error) {
      if (batch.length === 1 || isPostgresUnavailable(error)) {
        for (const waiting of batch) waiting.reject(error);
        return;
      }
      for (const waiting of batch) await this.commit([waiting]);
    }
  }
}
