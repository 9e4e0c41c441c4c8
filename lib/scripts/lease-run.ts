// Typed boundary of lua/leaseRun-1.lua: the one-run-at-a-time reconcile lease.
import { randomUUID } from 'node:crypto';
import { StockholdError } from '../errors';
import type { ScriptRunner } from '../redis/scripts';

/**
 * A lease step that got no reply (a command timeout, a primary lost mid-call) is sent at most this
 * many times in all. Its outcome is unknown: the step may have run. Acquiring again with the same
 * token answers "yours" (the script is idempotent per holder), and releasing is holder-checked, so
 * sending again is safe.
 */
export const leaseAttemptsMax = 3;
/** Waited before the next attempt, times the number of attempts made. */
export const leaseRetryDelayMs = 250;

type LeaseOp = 'acquire' | 'renew' | 'release';

/**
 * One holder's lease. The worst interleaving it is built for (seen under a Redis Cluster failover):
 * an acquire times out in the client but reaches Redis afterwards; without a retry the run gave up
 * with a 503 and the lease, held by nobody alive, refused every run for its whole length (a minute,
 * right after a failover, when reconciliation is needed most).
 */
export class RunLease {
  /**
   * `token`: a holder's own token again, from an acquire that threw (its outcome unknown): the
   * lost attempt may hold the lease in Redis (a failover can outlast every attempt and the
   * release after them), and acquiring with its token takes that lease back.
   */
  constructor(
    private readonly scripts: ScriptRunner,
    private readonly key: string,
    private readonly leaseMs: number,
    readonly token: string = randomUUID(),
  ) {}

  /** True when this holder has the lease; false when another has it. Throws when Redis never answered, having tried to give back what the lost attempts may have taken. */
  async acquire(): Promise<boolean> {
    try {
      return await this.step('acquire');
    } catch (error) {
      await this.release();
      throw error;
    }
  }

  /** One attempt: the next renewal comes a third of the lease later. */
  renew(): Promise<boolean> {
    return this.send('renew');
  }

  /** Gives the lease back, retried when Redis does not answer; never throws (the lease then ends with its length). */
  async release(): Promise<void> {
    await this.step('release').catch(() => undefined);
  }

  private async send(op: LeaseOp): Promise<boolean> {
    return (await this.scripts.run('leaseRun', [this.key], [op, this.token, this.leaseMs]))[0] === 1;
  }

  private async step(op: LeaseOp): Promise<boolean> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.send(op);
      } catch (error) {
        const unanswered = error instanceof StockholdError && error.code === 'backend_unavailable';
        if (!unanswered || attempt >= leaseAttemptsMax) throw error;
        await new Promise((resolve) => setTimeout(resolve, leaseRetryDelayMs * attempt));
      }
    }
  }
}
