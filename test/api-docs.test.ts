// GET /docs/: Swagger UI from the swagger-ui-dist package (no CDN), opened in a headless Chromium
// that may reach nothing but the API: the page renders every operation of the document, by its
// operationId, and a request to any other origin would fail the test.
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './support/harness';

let harness: Harness;
let browser: Browser;
beforeAll(async () => {
  harness = await startHarness();
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
});
afterAll(async () => {
  await browser?.close();
  await harness?.close();
});

const methods = ['get', 'put', 'post', 'delete', 'patch'] as const;

describe('GET /docs/', () => {
  it('renders every operation of the OpenAPI document, loading nothing from another origin', async () => {
    const document = (await harness.call('GET', '/openapi.json', { as: null })).body;
    const operationIds: string[] = [];
    for (const item of Object.values<Record<string, { operationId?: string }>>(document.paths)) {
      for (const method of methods) if (item[method]?.operationId !== undefined) operationIds.push(item[method]!.operationId!);
    }
    const page = await browser.newPage();
    const foreign: string[] = [];
    const failed: string[] = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(harness.baseUrl)) foreign.push(request.url());
    });
    page.on('requestfailed', (request) => failed.push(request.url()));
    try {
      const response = await page.goto(`${harness.baseUrl}/docs`);
      // Redirected to /docs/ (the page's relative URLs need it), then served.
      expect(response?.status()).toBe(200);
      expect(page.url()).toBe(`${harness.baseUrl}/docs/`);
      await page.waitForSelector('.opblock', { timeout: 20_000 });
      const shown = await page.$$eval('.opblock .opblock-summary-operation-id', (nodes) => nodes.map((node) => node.textContent?.trim() ?? ''));
      expect(shown.sort()).toEqual([...operationIds].sort());
      expect(await page.title()).toBe('Stockhold API');
      expect(foreign).toEqual([]);
      expect(failed).toEqual([]);
    } finally {
      await page.close();
    }
  }, 60_000);

  it('serves the page\'s files and nothing else of the package', async () => {
    const css = await fetch(`${harness.baseUrl}/docs/swagger-ui.css`);
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    const other = await fetch(`${harness.baseUrl}/docs/package.json`);
    expect(other.status).toBe(404);
    expect(other.headers.get('content-type')).toContain('application/problem+json');
    expect((await fetch(`${harness.baseUrl}/docs/..%2Fpackage.json`)).status).toBe(404);
    // Names every object has were once taken for allowed files (a 500).
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) expect((await fetch(`${harness.baseUrl}/docs/${name}`)).status, name).toBe(404);
    const page = await fetch(`${harness.baseUrl}/docs/`);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
  });
});
