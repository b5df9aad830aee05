/**
 * `npm run bench -- ui [--registries 10000] [--runs 5]`: time to first render of the dashboard's
 * registries page over `registries` entries, and the bytes it transfers, in Debian's Chromium
 * against a `serve` process on loopback (embedded store, seeded through the store). Each run is a
 * fresh browser context (nothing cached); a warm run (files cached) follows in the same context.
 * Reference measured in the same run: the page's one query (`POST /container_registries`, first
 * page sorted by name) sent from Node, and the same page sorted by id.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { launchBrowser } from '../../test/helpers/browser.js';
import { seedRegistries, startServe, stopServe } from '../../test/helpers/dashboard.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const COUNT = option('registries', 10_000);
const RUNS = option('runs', 5);
const PAGE_SIZE = 25;

interface Sample {
  rowsMs: number;
  healthMs: number;
  bytes: number;
  requests: number;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const spread = (values: number[]) => `${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)}`;

/** Loads /ui/ and answers when the rows, then every health badge, were on screen (ms since navigation start). */
async function load(page: Page, url: string): Promise<Sample> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  let bytes = 0;
  let requests = 0;
  cdp.on('Network.loadingFinished', (event: { encodedDataLength: number }) => {
    bytes += event.encodedDataLength;
    requests += 1;
  });
  await page.goto(`${url}/ui/`);
  const rowsMs = await shownAt(page, 'table.registries tbody tr');
  const healthMs = await shownAt(page, 'table.registries td.health .badge');
  await cdp.detach();
  return { rowsMs, healthMs, bytes, requests };
}

/**
 * When `PAGE_SIZE` elements match `selector`, in ms since navigation start. A function, not a
 * string: the page's CSP forbids eval, which a string predicate would need.
 */
async function shownAt(page: Page, selector: string): Promise<number> {
  const handle = await page.waitForFunction(
    ({ selector, size }) => {
      const g = globalThis as unknown as {
        document: { querySelectorAll(selector: string): { length: number } };
        performance: { now(): number };
      };
      return g.document.querySelectorAll(selector).length === size && g.performance.now();
    },
    { selector, size: PAGE_SIZE },
    { timeout: 60_000 },
  );
  return Number(await handle.jsonValue());
}

async function apiMs(url: string, sort: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${url}/container_registries?limit=${PAGE_SIZE}&skip=0${sort}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  await response.arrayBuffer();
  return performance.now() - started;
}

const dir = await mkdtemp(path.join(tmpdir(), 'bench-ui-'));
const seeded = performance.now();
await seedRegistries(path.join(dir, 'data'), COUNT);
console.log(`seeded ${COUNT} registries in ${(performance.now() - seeded).toFixed(0)} ms`);
const { cli, url } = await startServe({
  DATA_DIR: path.join(dir, 'data'),
  HEALTH_MONITOR_ENABLED: 'false',
  CRAWL_ENABLED: 'false',
  RATE_LIMIT_PER_SECOND: '0',
});
const browser = await launchBrowser();
try {
  const cold: Sample[] = [];
  const warm: Sample[] = [];
  const byName: number[] = [];
  const byId: number[] = [];
  await load(await browser.newPage(), url); // the first run warms the server (JIT, SQLite cache)
  for (let run = 0; run < RUNS; run++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    cold.push(await load(page, url));
    warm.push(await load(page, url));
    byName.push(await apiMs(url, '&sort=container_registry_name'));
    byId.push(await apiMs(url, ''));
    await context.close();
  }
  const line = (label: string, samples: Sample[]) =>
    console.log(
      `${label}: rows on screen ${median(samples.map((s) => s.rowsMs)).toFixed(0)} ms (${spread(samples.map((s) => s.rowsMs))}), ` +
        `health badges ${median(samples.map((s) => s.healthMs)).toFixed(0)} ms (${spread(samples.map((s) => s.healthMs))}), ` +
        `${(median(samples.map((s) => s.bytes)) / 1000).toFixed(1)} kB in ${median(samples.map((s) => s.requests))} requests`,
    );
  console.log(`dashboard over ${COUNT} registries, ${RUNS} runs, median (min–max):`);
  line('  cold (nothing cached)', cold);
  line('  warm (files cached)  ', warm);
  const query = median(byName);
  console.log(
    `  reference: the page's query alone from Node ${query.toFixed(0)} ms (${spread(byName)}); sorted by id ${median(byId).toFixed(0)} ms (${spread(byId)})`,
  );
  console.log(
    `  ratio: cold first render / its query = ${(median(cold.map((s) => s.rowsMs)) / query).toFixed(2)}x; targets < 1000 ms and < 300 kB`,
  );
} finally {
  await browser.close();
  await stopServe(cli);
  await rm(dir, { recursive: true, force: true });
}
