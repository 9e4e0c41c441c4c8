// A reconciliation run's report, as the API answers it and the log in Postgres keeps it.

export type ReconcileTrigger = 'manual' | 'scheduled' | 'cli';

export interface Correction {
  readonly sku: string;
  /** onHand or reserved corrected, or state: the SKU was missing from Redis and rebuilt. */
  readonly field: 'onHand' | 'reserved' | 'state' | 'perCustomerLimit';
  readonly before: number | null;
  readonly after: number | null;
}

export interface ReconcileReport {
  readonly runId: string;
  readonly trigger: ReconcileTrigger;
  readonly dryRun: boolean;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly skusChecked: number;
  readonly holdsExpired: number;
  /** Reservations whose pinned holds were given back: never confirmed (a cart across slots). */
  readonly pinsReleased: number;
  /** Striped SKUs whose stripes were evened out (a transfer between stripes in the ledger). */
  readonly stripesRebalanced: number;
  readonly commitsRequeued: number;
  readonly skusRebuilt: number;
  readonly driftCorrected: number;
  readonly onHandCorrected: number;
  readonly reservedCorrected: number;
  /** SKUs found out of agreement between Redis and the ledger (rebuilt, or a counter corrected). */
  readonly skusOutOfAgreement: number;
  /** The process was shutting down: the run ended after the page it was on. */
  readonly stoppedEarly: boolean;
  /** Pending debits released because their stock change ended without committing. */
  readonly debitsReleased: number;
  /** SKUs whose confirmed holds were more than RECONCILE_CONFIRMED_MAX (the rest wait a run). */
  readonly confirmedTruncated: number;
  /** SKUs this run could not reconcile (each skipped, the run went on), and why. */
  readonly skusFailed: number;
  readonly failures: ReadonlyArray<{ readonly sku: string; readonly message: string }>;
  /** What was corrected (in a dry run: what would be), at most RECONCILE_CORRECTIONS_REPORTED_MAX. */
  readonly corrections: readonly Correction[];
}

/** The counts a run accumulates while it goes. */
export class RunTally {
  skusChecked = 0;
  holdsExpired = 0;
  pinsReleased = 0;
  stripesRebalanced = 0;
  commitsRequeued = 0;
  skusRebuilt = 0;
  driftCorrected = 0;
  onHandCorrected = 0;
  reservedCorrected = 0;
  /** Bounded by the SKUs one run visits. */
  readonly skusOutOfAgreement = new Set<string>();
  debitsReleased = 0;
  confirmedTruncated = 0;
  skusFailed = 0;
  readonly failures: Array<{ sku: string; message: string }> = [];
  readonly corrections: Correction[] = [];
  correctionsDropped = 0;

  constructor(private readonly correctionsMax: number) {}

  fail(sku: string, error: unknown): void {
    this.skusFailed += 1;
    if (this.failures.length < this.correctionsMax) this.failures.push({ sku, message: error instanceof Error ? error.message : String(error) });
  }

  correct(correction: Correction): void {
    if (correction.field !== 'state') this.driftCorrected += 1;
    if (correction.field === 'onHand') this.onHandCorrected += 1;
    if (correction.field === 'reserved') this.reservedCorrected += 1;
    this.skusOutOfAgreement.add(correction.sku);
    if (this.corrections.length < this.correctionsMax) this.corrections.push(correction);
    else this.correctionsDropped += 1;
  }
}
