// Recreates the test database once per run and migrates it, so every run starts from an empty
// ledger (the ledger is append-only: tests cannot clean it row by row).
import { dropDatabase } from '../../lib/postgres/connection';
import { prepareDatabaseAt } from '../../lib/postgres/migrations';

export default async function setup(): Promise<void> {
  const url = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/stockhold_test';
  const name = new URL(url).pathname.slice(1);
  if (!/^stockhold_test\w*$/.test(name)) throw new Error(`refusing to recreate ${name}: test databases are named stockhold_test*`);
  await dropDatabase(url);
  await prepareDatabaseAt(url);
}
