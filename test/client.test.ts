// The generated typed client (lib/client): checked in up to date with the OpenAPI document
// (`npm run client:check` refuses a stale copy), and the README's checkout integration run as
// written against a real API: reserve, a 409 with Retry-After while another checkout holds the
// last unit, the retry once it is released, confirm.
import { execFile } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStockholdClient } from '../lib/client/client';
import { createSku, secrets, startHarness, type Harness } from './support/harness';

const generator = path.join(__dirname, '..', 'dist', 'apps', 'client', 'generate.js');
const run = (args: string[]) =>
  promisify(execFile)(process.execPath, [generator, ...args], { timeout: 60_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? -1, stdout: error.stdout ?? '', stderr: error.stderr ?? '' }),
  );

describe('npm run client:check', () => {
  it('finds lib/client up to date with the document', async () => {
    const checked = await run(['--check']);
    expect(checked.stderr).toBe('');
    expect(checked).toMatchObject({ code: 0, stdout: 'lib/client is up to date with the OpenAPI document\n' });
  });

  it('refuses a copy whose types no longer match the document', async () => {
    const stale = mkdtempSync(path.join(tmpdir(), 'stockhold-client-'));
    try {
      cpSync(path.join(__dirname, '..', 'lib', 'client'), stale, { recursive: true });
      appendFileSync(path.join(stale, 'schema.d.ts'), 'export type Edited = true;\n');
      const checked = await run(['--check', '--client-dir', stale]);
      expect(checked.code).toBe(1);
      expect(checked.stderr).toContain('out of date with the OpenAPI document (schema.d.ts)');
    } finally {
      rmSync(stale, { recursive: true, force: true });
    }
  });
});

describe('the typed client', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness();
  });
  afterAll(async () => {
    await harness?.close();
  });

  it('runs the README checkout: reserve, 409 with Retry-After, retry, confirm', async () => {
    const sku = await createSku(harness, 1);
    const stockhold = createStockholdClient({ baseUrl: harness.baseUrl, apiKey: secrets.checkout });
    const other = createStockholdClient({ baseUrl: harness.baseUrl, apiKey: secrets.otherCheckout });
    const first = await other.POST('/v1/reservations', { params: { header: { 'Idempotency-Key': 'other-1' } }, body: { lines: [{ sku, quantity: 1 }] } });
    expect(first.response.status).toBe(201);

    // As in the README:
    const reserve = () => stockhold.POST('/v1/reservations', { params: { header: { 'Idempotency-Key': `order-${sku}` } }, body: { lines: [{ sku, quantity: 1 }] } });
    let held = await reserve();
    expect(held.response.status).toBe(409);
    expect(held.error).toMatchObject({ code: 'insufficient_stock', status: 409 });
    expect(Number(held.response.headers.get('retry-after'))).toBeGreaterThan(0);
    // The other checkout lets go; the retry (same key) holds the unit.
    expect((await other.DELETE('/v1/reservations/{id}', { params: { path: { id: first.data!.id } } })).data?.status).toBe('released');
    held = await reserve();
    expect(held.data).toMatchObject({ status: 'pending', lines: [{ sku, quantity: 1 }] });
    const confirmed = await stockhold.POST('/v1/reservations/{id}/confirm', { params: { path: { id: held.data!.id } } });
    expect(confirmed.response.status).toBe(202);
    expect(confirmed.data?.status).toBe('confirmed');
    const read = await stockhold.GET('/v1/reservations/{id}', { params: { path: { id: held.data!.id } } });
    expect(read.data?.status).toBe('confirmed');
  });
});
