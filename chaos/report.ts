// The verdict of a chaos run: operations by kind and outcome, faults by kind, violations by
// check, liveness outside fault windows and the commit lag after each fault, and the lines to
// print around a violation so that `--seed N` and the history tell what happened.
import type { Lost, LedgerDump } from './checker';
import type { Fault, Operation, Violation } from './history';

/** After a fault ends, this long still counts as inside its window (reconnects, restarts). */
export const faultRecoveryMs = 2000;
export const violationsPrintedMax = 20;
export const neighboursPrintedMax = 12;

export interface Summary {
  readonly operations: number;
  readonly byKind: Record<string, { ok: number; fail: number; unknown: number }>;
  readonly faults: Record<string, number>;
  readonly violations: Record<string, number>;
  readonly reserveAttemptsOutsideFaults: number;
  readonly reserveAnsweredOutsideFaults: number;
  readonly commitLagAfterHealMs: { faults: number; median: number | null; max: number | null };
  readonly lost: Lost;
  /** Reservations the flash-sale guards refused: how hard the caps check was pressed. */
  readonly guardRefusals: { readonly customerLimit: number; readonly activeHolds: number };
}

function insideFault(faults: readonly Fault[], startMs: number, endMs: number): boolean {
  return faults.some((fault) => startMs <= fault.endMs + faultRecoveryMs && endMs >= fault.startMs);
}

export function summarise(operations: readonly Operation[], faults: readonly Fault[], violations: readonly Violation[], ledger: LedgerDump, lost: Lost): Summary {
  const byKind: Summary['byKind'] = {};
  let attemptsOutside = 0;
  let answeredOutside = 0;
  for (const operation of operations) {
    byKind[operation.kind] ??= { ok: 0, fail: 0, unknown: 0 };
    byKind[operation.kind]![operation.outcome] += 1;
    if (operation.kind !== 'reserve') continue;
    for (const attempt of operation.attempts) {
      if (insideFault(faults, attempt.startMs, attempt.endMs)) continue;
      attemptsOutside += 1;
      if (attempt.status !== null && attempt.status !== 503) answeredOutside += 1;
    }
  }
  const countBy = <T>(items: readonly T[], key: (item: T) => string) => {
    const counts: Record<string, number> = {};
    for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
    return counts;
  };
  return {
    operations: operations.length,
    byKind,
    faults: countBy(faults, (fault) => fault.kind),
    violations: countBy(violations, (violation) => violation.check),
    reserveAttemptsOutsideFaults: attemptsOutside,
    reserveAnsweredOutsideFaults: answeredOutside,
    commitLagAfterHealMs: commitLag(operations, faults, ledger),
    lost,
    guardRefusals: {
      customerLimit: operations.filter((operation) => operation.code === 'customer_limit_exceeded').length,
      activeHolds: operations.filter((operation) => operation.code === 'too_many_active_holds').length,
    },
  };
}

/** For each fault, how long after it healed the confirms acknowledged during it were committed. */
function commitLag(operations: readonly Operation[], faults: readonly Fault[], ledger: LedgerDump): Summary['commitLagAfterHealMs'] {
  const lags: number[] = [];
  const confirms = operations.filter((operation) => operation.kind === 'confirm' && operation.outcome === 'ok' && operation.reservationId !== undefined);
  for (const fault of faults) {
    let latest: number | undefined;
    for (const confirm of confirms) {
      if (confirm.completeMs < fault.startMs || confirm.completeMs > fault.endMs) continue;
      const committed = ledger.reservations.get(confirm.reservationId!);
      if (committed !== undefined) latest = Math.max(latest ?? 0, committed.committedAtMs);
    }
    if (latest !== undefined) lags.push(Math.max(0, latest - fault.endMs));
  }
  lags.sort((a, b) => a - b);
  return { faults: lags.length, median: lags.length === 0 ? null : lags[Math.floor(lags.length / 2)]!, max: lags.at(-1) ?? null };
}

export function formatSummary(summary: Summary, seed: number, durationS: number): string {
  const lines: string[] = [];
  lines.push(`chaos: seed ${seed}, ${durationS} s, ${summary.operations} operations`);
  lines.push('');
  lines.push('operation          ok     fail   unknown');
  for (const [kind, counts] of Object.entries(summary.byKind).sort()) {
    lines.push(`${kind.padEnd(18)}${String(counts.ok).padStart(6)} ${String(counts.fail).padStart(8)} ${String(counts.unknown).padStart(9)}`);
  }
  lines.push('');
  lines.push('fault                  injected');
  for (const [kind, count] of Object.entries(summary.faults).sort()) lines.push(`${kind.padEnd(22)}${String(count).padStart(9)}`);
  lines.push('');
  const checks = ['confirms', 'ledger', 'idempotency', 'http', 'agreement', 'sell-out', 'caps'];
  lines.push('check                violations');
  for (const check of checks) lines.push(`${check.padEnd(20)}${String(summary.violations[check] ?? 0).padStart(11)}`);
  lines.push('');
  const share = summary.reserveAttemptsOutsideFaults === 0 ? 'n/a' : `${((100 * summary.reserveAnsweredOutsideFaults) / summary.reserveAttemptsOutsideFaults).toFixed(2)} %`;
  lines.push(`liveness: reserve attempts outside fault windows answered (not 503): ${share} of ${summary.reserveAttemptsOutsideFaults}`);
  const lag = summary.commitLagAfterHealMs;
  lines.push(`commit lag after a fault heals: median ${lag.median ?? 'n/a'} ms, max ${lag.max ?? 'n/a'} ms (over ${lag.faults} faults with confirms)`);
  lines.push(`flash-sale guards: ${summary.guardRefusals.customerLimit} reservations refused by a per-customer limit, ${summary.guardRefusals.activeHolds} by the active-holds cap`);
  lines.push(`lost with Redis data (data-loss mode; a failover takes only reservation keys): ${summary.lost.confirms} acknowledged confirms, ${summary.lost.cancels} acknowledged cancels, ${summary.lost.reservationKeys} reservation idempotency records`);
  return lines.join('\n');
}

/** A violation, the operations it names, and the faults around them. */
export function formatViolation(violation: Violation, operations: readonly Operation[], faults: readonly Fault[]): string {
  const lines = [`[${violation.check}] ${violation.message}`];
  const involved = violation.operations.slice(0, neighboursPrintedMax).map((index) => operations[index]).filter((operation): operation is Operation => operation !== undefined);
  for (const operation of involved) {
    const attempts = operation.attempts.map((attempt) => `${attempt.status ?? attempt.error}${attempt.code === undefined ? '' : ` ${attempt.code}`}@api${attempt.api}`).join(', ');
    lines.push(`    #${operation.index} ${operation.client} ${operation.kind} ${operation.method} ${operation.path} t=${operation.invokeMs}..${operation.completeMs} ${operation.outcome} [${attempts}]`);
    for (const fault of faults) {
      if (fault.startMs <= operation.completeMs + faultRecoveryMs && fault.endMs >= operation.invokeMs - 5000) lines.push(`        fault ${fault.kind} ${fault.target} ${fault.detail ?? ''} t=${fault.startMs}..${fault.endMs}`);
    }
  }
  return lines.join('\n');
}
