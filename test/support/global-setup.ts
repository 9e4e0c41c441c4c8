// Recreates the test database once per run and migrates it, so every run starts from an empty
// ledger (the ledger is append-only: tests cannot clean it row by row). A database another run is
// using is not dropped from under it (that run's ledger would vanish mid-test: a confirm then
// ends "rejected", the SKU missing from the ledger): setup waits a little for its sessions to
// end, then refuses, naming them.
import { Client } from 'pg';
import { dropDatabase } from '../../lib/postgres/connection';
import { prepareDatabaseAt } from '../../lib/postgres/migrations';

/** How long setup waits for other sessions on the test database to end (a run that just finished). */
const otherSessionsWaitMs = 15_000;

async function otherSessions(url: string, name: string): Promise<string[]> {
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const { rows } = await client.query<{ who: string }>(
      "SELECT coalesce(nullif(application_name, ''), 'pid ' || pid) AS who FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
      [name],
    );
    return rows.map((row) => row.who);
  } finally {
    await client.end();
  }
}

export default async function setup(): Promise<void> {
  const url = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/stockhold_test';
  const name = new URL(url).pathname.slice(1);
  if (!/^stockhold_test\w*$/.test(name)) throw new Error(`refusing to recreate ${name}: test databases are named stockhold_test*`);
  const deadline = Date.now() + otherSessionsWaitMs;
  for (let others = await otherSessions(url, name); others.length > 0; others = await otherSessions(url, name)) {
    if (Date.now() > deadline) throw new Error(`${name} is in use by ${others.length} other session(s) (${[...new Set(others)].join(', ')}): another test run? Give this one a database of its own with TEST_DATABASE_URL`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  await dropDatabase(url);
  await prepareDatabaseAt(url);
}
