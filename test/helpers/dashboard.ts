/**
 * The dashboard's test kit: a page that records console errors, uncaught errors and CSP
 * violations, axe-core run inside it, and a catalog `serve` process started on port 0.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Browser, Page } from 'playwright-core';
import type { ContainerRegistry, HealthReport } from '../../src/catalog/model.js';
import { EmbeddedDatabase } from '../../src/catalog/store/embedded-collection.js';
import { openRepositories } from '../../src/catalog/store/open-stores.js';
import { REGISTRIES } from '../../src/catalog/store/registry-store.js';
import { spawnCli, type CliProcess } from './spawn-cli.js';

export interface DashboardPage {
  readonly page: Page;
  /** Console errors (with the URL they came from), uncaught errors, CSP violations, blocked requests. */
  readonly problems: string[];
  close(): Promise<void>;
}

/**
 * Chromium logs a failed fetch (an HTTP error status) as a console error. The dashboard asks
 * for some answers that may be 4xx by design: `/events` before the catalog has it (404, then it
 * polls), a registry's health before its first check (404), and the sign-in check with a bad
 * token (401). These are not errors of the page; everything else is.
 */
/** The request the dashboard signs in with (main.js `check`). */
export const SIGN_IN_CHECK = /\/container_registries\?limit=1$/;

export type ExpectedFailure = (status: number, url: string) => boolean;

export const EXPECTED_FAILURES: ExpectedFailure = (status, url) =>
  (status === 404 && /\/events(\?|$)/.test(url)) ||
  (status === 404 && /\/health\?limit=\d+$/.test(url)) ||
  // The sign-in check without a token: how the page learns that this catalog wants one.
  (status === 401 && SIGN_IN_CHECK.test(url));

export async function openDashboardPage(
  browser: Browser,
  expected: ExpectedFailure = EXPECTED_FAILURES,
): Promise<DashboardPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems: string[] = [];
  const failed = new Map<string, number>();
  page.on('response', (response) => {
    if (response.status() >= 400) failed.set(response.url(), response.status());
  });
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const url = message.location().url;
    const status = failed.get(url);
    if (/^Failed to load resource/.test(message.text()) && status !== undefined && expected(status, url))
      return;
    problems.push(`console: ${message.text()} (${url})`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  // CSP violations reach the page as events before (or without) a console line: record them too.
  await page.exposeFunction('__reportCspViolation', (text: string) => problems.push(`CSP: ${text}`));
  await page.addInitScript({
    content: `document.addEventListener('securitypolicyviolation', (event) =>
      window.__reportCspViolation(event.violatedDirective + ' blocked ' + event.blockedURI));`,
  });
  await context.route(/^(?!https?:\/\/(127\.\d+\.\d+\.\d+|\[::1\]|localhost)[:/])/, async (route) => {
    problems.push(`blocked request to ${route.request().url()}`);
    await route.abort();
  });
  return { page, problems, close: () => context.close() };
}

export interface AxeViolation {
  readonly id: string;
  readonly impact: string | null;
  readonly help: string;
  readonly nodes: number;
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** axe-core (from npm) evaluated in the page, WCAG 2 A/AA rules; answers the serious and critical violations. */
export async function seriousAxeViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(AXE_SOURCE);
  // A string, evaluated in the page: the test code is compiled without the DOM's types.
  const violations = (await page.evaluate(`axe
    .run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'best-practice'] } })
    .then((result) => result.violations)`)) as Array<{
    id: string;
    impact: string | null;
    help: string;
    nodes: unknown[];
  }>;
  return violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map(({ id, impact, help, nodes }) => ({ id, impact, help, nodes: nodes.length }));
}

/** `serve` as a child process on 127.0.0.1:<port 0>; answers its URL. Stop it with `child.kill()`. */
export async function startServe(env: Record<string, string>): Promise<{ cli: CliProcess; url: string }> {
  const cli = spawnCli(['serve'], { PORT: '0', LOG_LEVEL: 'info', ...env });
  const url = String((await cli.waitForLog((line) => line.msg === 'catalog listening', 30_000)).url);
  return { cli, url };
}

export async function stopServe(cli: CliProcess | undefined): Promise<void> {
  if (!cli || cli.child.exitCode !== null) return;
  cli.child.kill('SIGTERM');
  await cli.exited;
}

/** The name of seeded registry `i`: sorted by name, registry `i` is the `i`-th. */
export const seededName = (i: number): string => `registry-${String(i).padStart(5, '0')}`;

/** Registry `i`'s seeded health: every seventh unreachable, the others healthy. */
export const seededStatus = (i: number): 'healthy' | 'unreachable' =>
  i % 7 === 3 ? 'unreachable' : 'healthy';

function seededReport(
  url: string,
  status: 'healthy' | 'unreachable',
  at: number,
  latency: number,
): HealthReport {
  const healthy = status === 'healthy';
  return {
    reachable: healthy,
    status_code: healthy ? 200 : null,
    reason: healthy ? 'OK' : null,
    url,
    probe_url: `${url}/v2/`,
    detail: healthy ? 'the registry answered /v2/ with 200' : 'connection refused',
    status,
    oci_compatible: healthy,
    api_version: healthy ? 'registry/2.0' : null,
    auth: null,
    latency_ms: latency,
    checked_at: new Date(at).toISOString(),
    error: healthy ? null : 'ECONNREFUSED',
  };
}

/**
 * Fills an embedded store under `dataDir` (before `serve` opens it) with `count` registries,
 * each with one health report and the first `historyOf` (by name) with 20. Written in batches
 * straight into the store's collections (10,000 in a few seconds; one by one through the API or
 * the repositories it takes minutes); the collections are the ones HealthStore.open and
 * openRegistryStore name, and the tests read everything back through the API.
 */
export async function seedRegistries(dataDir: string, count: number, historyOf = 100): Promise<void> {
  const database = await EmbeddedDatabase.open(dataDir);
  try {
    // Opened as serve opens them first, so the tables and indexes are the real ones.
    await openRepositories(database, 'registries', '');
    const registries = await database.collection<ContainerRegistry>('registries', REGISTRIES);
    const statuses = await database.collection<Record<string, unknown>>('health_statuses', {
      idField: 'registry_id',
      indexes: [{ field: 'status', kind: 'column', column: 'status' }],
    });
    const histories = await database.collection<Record<string, unknown>>('health_histories', {
      idField: 'registry_id',
      indexes: [],
    });
    const now = Date.now();
    for (let start = 0; start < count; start += 1000) {
      const documents: ContainerRegistry[] = [];
      const status: Array<Record<string, unknown>> = [];
      const history: Array<Record<string, unknown>> = [];
      for (let i = start; i < Math.min(count, start + 1000); i++) {
        const url = `http://127.0.0.1:${10_000 + (i % 50_000)}`;
        const id = randomUUID();
        documents.push({
          container_registry_id: id,
          container_registry_name: seededName(i),
          container_registry_public_url: url,
          container_registry_image_prefix: '',
          container_registry_tags: [`team-${i % 20}`, i % 2 === 0 ? 'even' : 'odd'],
          container_registry_metadata: { seeded: true },
          container_registry_config: {},
          container_registry_storage_info: {},
        });
        const reports = Array.from({ length: i < historyOf ? 20 : 1 }, (_, r) =>
          seededReport(
            url,
            r === 0 ? seededStatus(i) : r % 9 === 4 ? 'unreachable' : 'healthy',
            now - r * 60_000,
            2 + ((i * 7 + r * 3) % 40),
          ),
        );
        history.push({ registry_id: id, history: reports });
        status.push({ registry_id: id, status: reports[0]!.status, checked_at: reports[0]!.checked_at });
      }
      await registries.createMany(documents);
      await histories.createMany(history);
      await statuses.createMany(status);
    }
  } finally {
    await database.close();
  }
}
