import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import type { Browser } from 'playwright-core';
import { parse } from 'yaml';
import { OPENAPI_PATH } from '../../../src/catalog/http/openapi.js';
import { listen, type RunningServer } from '../../../src/shared/server.js';
import { launchBrowser, openWatchedPage } from '../../helpers/browser.js';
import { startCatalog, type TestCatalog } from '../../helpers/catalog.js';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

/** Every `METHOD path` that openapi.yaml documents. */
function documentedOperations(): string[] {
  const doc = parse(readFileSync(OPENAPI_PATH, 'utf8')) as { paths: Record<string, Record<string, unknown>> };
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((key) => METHODS.includes(key))
      .map((method) => `${method.toUpperCase()} ${path}`),
  );
}

describe('/docs in a real browser (Chromium)', function () {
  this.timeout(60_000);
  let browser: Browser;
  let catalog: TestCatalog;
  let server: RunningServer;

  before(async () => {
    browser = await launchBrowser();
    catalog = await startCatalog('embedded');
    server = await listen(catalog.catalog.handler, { host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await browser?.close();
    await server?.close(1000);
    await catalog?.stop();
  });

  it('renders every documented operation, with no console error', async () => {
    const watched = await openWatchedPage(browser);
    try {
      const response = await watched.page.goto(`${server.url}/docs/`);
      expect(response?.status()).to.equal(200);
      await watched.page.waitForSelector('.opblock', { timeout: 15_000 }).catch((error: Error) => {
        throw new Error(
          `no operation rendered (${error.message}); browser errors: ${watched.errors.join('; ')}`,
        );
      });
      const rendered = await watched.page.$$eval('.opblock', (blocks) =>
        blocks.map((block) => {
          const method = block.querySelector('.opblock-summary-method')?.textContent?.trim() ?? '';
          const path = block.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? '';
          return `${method.toUpperCase()} ${path}`;
        }),
      );
      const expected = documentedOperations();
      expect(expected.length).to.be.greaterThan(10);
      expect([...rendered].sort()).to.deep.equal([...expected].sort());
      expect(watched.errors).to.deep.equal([]);
    } finally {
      await watched.close();
    }
  });

  it('serves a page whose inline style holds no "undefined"', async () => {
    const html = await (await fetch(`${server.url}/docs/`)).text();
    const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((match) => match[1]);
    expect(styles.length).to.be.greaterThan(0);
    for (const style of styles) expect(style).not.to.include('undefined');
  });
});
