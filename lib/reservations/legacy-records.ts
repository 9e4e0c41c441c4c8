// Moving reservation records of the layout before the shared buckets (a hash per reservation at
// `res:{<id>}`, see docs/design.md "Reservation records in shared buckets") into their buckets:
// `npm run migrate:records`, once every process of the older version has stopped (an older
// process still writing an old record while it is moved would lose its write). Until it has
// run, a read that finds neither a record nor a ledger row but an old record answers 503
// `record_migration_pending` rather than 404 (ReservationService.read).
//
// Per old record: its fields and PTTL are read, importRecord writes it into its bucket (unless
// there already), and the old key is deleted. A confirmed one whose commit job ran in between
// (it found no record to mark committed) would stay "confirmed" in Redis: the ledger is asked
// after the import, and a decided one is forgotten (reads fall through to the ledger). Asking
// before the import instead would miss a job that finishes between the question and the import.
// The customer index's old members (the record key) become "<bucket>#<id>".
import type { Knex } from 'knex';
import { Cluster, type Redis } from 'ioredis';
import { withPostgres } from '../postgres/connection';
import type { RedisClient } from '../redis/connection';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { forgetRecord, importRecord } from '../scripts/import-record';

/** Keys asked of SCAN at a time. */
export const legacyScanBatch = 500;
/** Members read from one customer's index (the guards keep it to about MAX_ACTIVE_HOLDS_PER_CUSTOMER). */
export const legacyCustomerMembersMax = 10_000;
/** Old records moved by one run at most (a run again goes on where this one stopped). */
export const legacyRecordsPerRunMax = 5_000_000;

const legacyIdPattern = /^[A-Za-z0-9_-]{22}$/;

export interface LegacyMigrationReport {
  /** Old records moved into their buckets. */
  imported: number;
  /** Old records whose reservation was in its bucket already (a run before, interrupted). */
  alreadyThere: number;
  /** Confirmed ones the ledger had decided meanwhile: forgotten, the ledger answers for them. */
  forgotten: number;
  /** Customer index members rewritten. */
  customerMembers: number;
  /** Whether the run stopped at legacyRecordsPerRunMax (run it again). */
  truncated: boolean;
}

export interface LegacyMigrationDeps {
  readonly redis: RedisClient;
  readonly scripts: ScriptRunner;
  readonly keys: RedisKeys;
  readonly knex: Knex;
  readonly prefix: string;
}

/** The reservation id of an old record's key, or undefined for any other key (buckets included). */
export function legacyRecordId(prefix: string, key: string): string | undefined {
  if (!key.startsWith(`${prefix}res:{`) || !key.endsWith('}')) return undefined;
  const id = key.slice(prefix.length + 'res:{'.length, -1);
  return legacyIdPattern.test(id) ? id : undefined;
}

async function* scanKeys(redis: RedisClient, pattern: string): AsyncGenerator<string> {
  const nodes: Redis[] = redis instanceof Cluster ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', legacyScanBatch);
      yield* keys;
      cursor = next;
    } while (cursor !== '0');
  }
}

export async function migrateLegacyRecords(deps: LegacyMigrationDeps): Promise<LegacyMigrationReport> {
  const { redis, scripts, keys, knex, prefix } = deps;
  const report: LegacyMigrationReport = { imported: 0, alreadyThere: 0, forgotten: 0, customerMembers: 0, truncated: false };
  for await (const key of scanKeys(redis, `${prefix}res:{*}`)) {
    const id = legacyRecordId(prefix, key);
    if (id === undefined) continue;
    if (report.imported + report.alreadyThere >= legacyRecordsPerRunMax) {
      report.truncated = true;
      break;
    }
    const [fields, timeLeftMs] = await Promise.all([redis.hgetall(key), redis.pttl(key)]);
    // Gone meanwhile (its own expiry): nothing to move.
    if (fields.s === undefined) continue;
    const outcome = await importRecord(scripts, keys, { id, fields, timeLeftMs });
    if (outcome === 'imported') report.imported += 1;
    else report.alreadyThere += 1;
    if (fields.s === 'confirmed') {
      const row = await withPostgres(() => knex('reservations').first('fence').where({ id }));
      if (row !== undefined && (await forgetRecord(scripts, keys, id, Number(row.fence)))) report.forgotten += 1;
    }
    await redis.del(key);
  }
  for await (const customerKey of scanKeys(redis, `${prefix}cust:{*}`)) {
    const scored = await redis.zrange(customerKey, 0, legacyCustomerMembersMax - 1, 'WITHSCORES');
    for (let index = 0; index + 1 < scored.length; index += 2) {
      const member = scored[index]!;
      const id = legacyRecordId(prefix, member);
      if (id === undefined) continue;
      // One slot (the customer's key): the new member is added before the old one goes.
      await redis.multi().zadd(customerKey, scored[index + 1]!, `${keys.reservation(id)}#${id}`).zrem(customerKey, member).exec();
      report.customerMembers += 1;
    }
  }
  return report;
}
