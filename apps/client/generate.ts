// `npm run client:generate`: writes the OpenAPI document, as an API with the default
// configuration serves it at /openapi.json, to lib/client/openapi.json, and its TypeScript types
// to lib/client/schema.d.ts (openapi-typescript), which lib/client/client.ts gives openapi-fetch.
// `npm run client:check` (also run by the test suite) regenerates both into a scratch directory
// and exits 1 when the checked-in files differ: the client never drifts from the document.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadConfig } from '../../lib/config';
import { openApiDocument } from '../api/openapi';

const root = path.join(__dirname, '..', '..', '..');
// `--client-dir DIR`: another copy of lib/client to write or check (the tests check a stale one).
const clientDirArgument = process.argv.indexOf('--client-dir');
const clientDirectory = clientDirArgument === -1 ? path.join(root, 'lib', 'client') : path.resolve(String(process.argv[clientDirArgument + 1]));
const generator = path.join(root, 'node_modules', '.bin', 'openapi-typescript');
const generateTimeoutMs = 60_000;

/** The configuration whose limits the checked-in document states: the defaults. */
const defaultsOnly = loadConfig({ API_KEYS: 'generator:admin:client-generator-secret-0000', REDIS_URL: 'redis://127.0.0.1:6379', DATABASE_URL: 'postgres://127.0.0.1/stockhold' });

async function generate(directory: string): Promise<void> {
  const documentFile = path.join(directory, 'openapi.json');
  writeFileSync(documentFile, `${JSON.stringify(openApiDocument(defaultsOnly), null, 2)}\n`);
  await promisify(execFile)(generator, [documentFile, '--output', path.join(directory, 'schema.d.ts')], { timeout: generateTimeoutMs, env: { ...process.env, NO_COLOR: '1' } });
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  if (!check) {
    await generate(clientDirectory);
    process.stdout.write(`wrote ${path.relative(root, clientDirectory)}/openapi.json and schema.d.ts\n`);
    return;
  }
  const scratch = mkdtempSync(path.join(tmpdir(), 'stockhold-client-'));
  try {
    await generate(scratch);
    const stale = ['openapi.json', 'schema.d.ts'].filter((file) => {
      const fresh = readFileSync(path.join(scratch, file), 'utf8');
      let current = '';
      try {
        current = readFileSync(path.join(clientDirectory, file), 'utf8');
      } catch {
        return true;
      }
      return fresh !== current;
    });
    if (stale.length > 0) {
      process.stderr.write(`lib/client is out of date with the OpenAPI document (${stale.join(', ')}): run npm run client:generate and commit the result\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write('lib/client is up to date with the OpenAPI document\n');
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((error) => {
  process.stderr.write(`client generation failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
