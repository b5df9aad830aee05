import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import { createToken } from '../../../src/catalog/access/tokens.js';
import { launchBrowser } from '../../helpers/browser.js';
import {
  openDashboardPage,
  seededName,
  seededStatus,
  seedRegistries,
  seriousAxeViolations,
  startServe,
  stopServe,
  type DashboardPage,
} from '../../helpers/dashboard.js';
import { pushPlatformImage } from '../../helpers/image-fixtures.js';
import { freePort } from '../../helpers/ports.js';
import {
  REPO_ROOT,
  startDistribution,
  startTestRegistry,
  type TestRegistry,
} from '../../helpers/registry.js';
import type { CliProcess } from '../../helpers/spawn-cli.js';

/**
 * The dashboard in Debian's Chromium against a real `serve` process: its monitor probes
 * registries on loopback (the bundled registry, CNCF Distribution, one that is stopped during
 * the test, and a closed port), an image is pushed and crawled, and access control is on.
 */

const MONITOR_INTERVAL_MS = 2000;
/** The dashboard reloads the visible page this often without /events (live.js POLL_MS). */
const POLL_MS = 3000;
/**
 * From a registry going down to its badge turning: the monitor's next probe (within one
 * interval, plus the probe's timeout), then the page's next reload (an event, or a poll), plus
 * a second for a loaded machine.
 */
const BADGE_BUDGET_MS = MONITOR_INTERVAL_MS + 1000 + POLL_MS + 1000;
const SCREENSHOT = path.join(REPO_ROOT, 'docs', 'dashboard.png');

/** An envelope as the tests read it (its shape is checked by the API tests, not here). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Envelope = any;

interface Api {
  (method: string, route: string, body?: unknown): Promise<{ status: number; body: Envelope; total: number }>;
}

function apiClient(base: string, token: string): Api {
  return async (method, route, body) => {
    const response = await fetch(`${base}${route}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return {
      status: response.status,
      body: await response.json(),
      total: Number(response.headers.get('x-total-count')),
    };
  };
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** The badge of the registry row `id`, as the page shows it. */
async function badgeOf(page: Page, id: string): Promise<string | null> {
  return page
    .locator(`tr[data-id="${id}"] td.health .badge`)
    .getAttribute('data-status', { timeout: 100 })
    .catch(() => null);
}

describe('dashboard (/ui) in Chromium, against a catalog probing loopback registries', function () {
  this.timeout(180_000);
  let browser: Browser;
  let dir: string;
  let cli: CliProcess | undefined;
  let base: string;
  let ours: TestRegistry;
  let doomed: TestRegistry | undefined;
  let distribution: Awaited<ReturnType<typeof startDistribution>>;
  let write: Api;
  const read = createToken('viewer', 'read');
  const writer = createToken('ci', 'write');
  const expired = createToken('old', 'read', new Date(Date.now() - 60_000));
  const ids: Record<string, string> = {};
  let watched: DashboardPage | undefined;

  before(async () => {
    browser = await launchBrowser();
    dir = await mkdtemp(path.join(tmpdir(), 'dashboard-'));
    ours = await startTestRegistry();
    doomed = await startTestRegistry();
    distribution = await startDistribution();
    const closedPort = await freePort();
    ({ cli, url: base } = await startServe({
      DATA_DIR: path.join(dir, 'data'),
      API_TOKENS: [read.entry, writer.entry, expired.entry].join(','),
      HEALTH_PROBE_ALLOW: '127.0.0.0/8',
      HEALTH_PROBE_DENY: '',
      HEALTH_PROBE_TIMEOUT_MS: '1000',
      HEALTH_MONITOR_INTERVAL_MS: String(MONITOR_INTERVAL_MS),
      HEALTH_MONITOR_JITTER_MS: '0',
      CRAWL_ENABLED: 'false',
    }));
    write = apiClient(base, writer.token);
    await pushPlatformImage(ours.url, 'team/app', '1.0', { os: 'linux', architecture: 'amd64' });
    await pushPlatformImage(distribution.url, 'team/app', '1.0', { os: 'linux', architecture: 'arm64' });
    const entries: Array<[string, string, Record<string, unknown>]> = [
      ['bundled', ours.url, { credentials: { username: 'robot', password: 'hunter2-secret' } }],
      ['distribution', distribution.url, {}],
      ['doomed', doomed.url, {}],
      ['closed-port', `http://127.0.0.1:${closedPort}`, {}],
    ];
    for (const [name, url, config] of entries) {
      const created = await write('POST', '/container_registry', {
        container_registry_name: name,
        container_registry_public_url: url,
        container_registry_tags: ['loopback', name === 'closed-port' ? 'broken' : 'working'],
        container_registry_config: config,
      });
      expect(created.status, JSON.stringify(created.body)).to.equal(201);
      ids[name] = created.body.data.id;
    }
    for (const name of ['bundled', 'distribution']) {
      const crawled = await write('POST', `/container_registry/${ids[name]}/crawl`);
      expect(crawled.status, JSON.stringify(crawled.body)).to.equal(200);
    }
    // A few monitor rounds, so that every registry has a history to draw.
    await waitFor('three checks of every registry', async () => {
      for (const id of Object.values(ids)) {
        const health = await write('GET', `/container_registry/${id}/health`);
        if (health.status !== 200 || health.body.data.history.length < 3) return undefined;
      }
      return true;
    });
  });

  afterEach(async () => {
    await watched?.close();
    watched = undefined;
  });

  after(async () => {
    await browser?.close();
    await stopServe(cli);
    await ours?.close();
    await doomed?.close();
    await distribution?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function signedInPage(): Promise<DashboardPage> {
    watched = await openDashboardPage(browser);
    await watched.page.goto(`${base}/ui/`);
    await signIn(watched.page, read.token);
    await watched.page.locator('table.registries tbody tr').first().waitFor();
    return watched;
  }

  it('serves the page and its files from the catalog, under the CSP, with cache headers', async () => {
    const redirect = await fetch(`${base}/ui`, { redirect: 'manual' });
    expect(redirect.status).to.equal(301);
    expect(redirect.headers.get('location')).to.equal('ui/');
    // No token: the page is public on this token-protected catalog (it holds no data), the API is not.
    const page = await fetch(`${base}/ui/`);
    expect(page.status).to.equal(200);
    expect((await fetch(`${base}/container_registries?limit=1`, { method: 'POST' })).status).to.equal(401);
    expect(page.headers.get('cache-control')).to.equal('no-cache');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).to.include("script-src 'self'");
    const html = await page.text();
    expect(html).not.to.match(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script
    const assets = [...html.matchAll(/(?:src|href)="(static\/[^"]+)"/g)].map((match) => match[1]!);
    expect(assets.length).to.be.greaterThan(2);
    for (const asset of assets) {
      const file = await fetch(`${base}/ui/${asset}`);
      expect(file.status, asset).to.equal(200);
      expect(file.headers.get('cache-control'), asset).to.equal('public, max-age=31536000, immutable');
      expect(file.headers.get('x-content-type-options')).to.equal('nosniff');
    }
    expect((await fetch(`${base}/ui/static/0000000000000000/app/main.js`)).status).to.equal(404);
  });

  it('turns away a token without read access with a clear sign-in error', async () => {
    // The sign-in check answers 401 for these tokens: expected failures on the network, not page errors.
    watched = await openDashboardPage(browser);
    const { page } = watched;
    await page.goto(`${base}/ui/`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await signIn(page, expired.token);
    await expect(await page.getByRole('alert').textContent()).to.equal(
      'Sign-in failed: The bearer token has expired',
    );
    await signIn(page, 'aios_not-a-token-of-this-catalog');
    await page.getByRole('alert').filter({ hasText: 'is not valid' }).waitFor();
    expect(await page.getByRole('alert').textContent()).to.equal(
      'Sign-in failed: The bearer token is not valid',
    );
    expect(await page.locator('table.registries').count()).to.equal(0);
    expect(await page.evaluate('sessionStorage.length')).to.equal(0);
    expect(await seriousAxeViolations(page)).to.deep.equal([]);
    expect(watched.problems).to.deep.equal([]);
  });

  it('lists the registries with the health their last probe found', async () => {
    const { page, problems } = await signedInPage();
    await page.getByText('Signed in with a token').waitFor();
    for (const [name, id] of Object.entries(ids)) {
      const health = await write('GET', `/container_registry/${id}/health`);
      const status = health.body.data.last.status;
      expect(status).to.equal(name === 'closed-port' ? 'unreachable' : 'healthy');
      await waitFor(`${name}'s badge`, async () => ((await badgeOf(page, id)) === status ? true : undefined));
      const row = page.locator(`tr[data-id="${id}"]`);
      expect(await row.locator('th a').textContent()).to.equal(name);
      expect(await row.locator('svg.sparkline rect').count()).to.be.at.least(3);
      expect(await row.locator('td.num').textContent()).to.match(/ ms$/);
    }
    expect(await page.locator('.summary').textContent()).to.equal('Registries 1–4 of 4');
    expect(await page.locator('.live').textContent()).to.match(/^(Live updates|Refreshing every 3 s)$/);
    await page.screenshot({ path: SCREENSHOT });
    expect(await seriousAxeViolations(page)).to.deep.equal([]);
    expect(problems).to.deep.equal([]);
  });

  it('turns a registry’s badge when it goes down, within one monitor interval, without a reload', async () => {
    const { page, problems } = await signedInPage();
    const id = ids.doomed!;
    await waitFor('the healthy badge', async () =>
      (await badgeOf(page, id)) === 'healthy' ? true : undefined,
    );
    await page.evaluate("window.marker = 'same page'");
    const stoppedAt = Date.now();
    await doomed!.close();
    doomed = undefined;
    // The next probe finds it down (within one interval, plus the probe's timeout); the page
    // shows it at the next live event or poll.
    await waitFor(
      'the unreachable badge',
      async () => ((await badgeOf(page, id)) === 'unreachable' ? true : undefined),
      BADGE_BUDGET_MS,
    );
    const tookMs = Date.now() - stoppedAt;
    expect(await page.evaluate('window.marker')).to.equal('same page');
    const api = await write('GET', `/container_registry/${id}/health`);
    expect(api.body.data.last.status).to.equal('unreachable');
    expect(tookMs).to.be.below(BADGE_BUDGET_MS);
    expect(problems).to.deep.equal([]);
  });

  it('finds where an image can be pulled: the candidates resolve_image answers, with pull commands', async () => {
    const { page, problems } = await signedInPage();
    await page.getByRole('link', { name: 'Image search' }).click();
    await page.getByLabel('Image reference or digest').fill('team/app:1.0');
    await page.getByRole('button', { name: 'Find' }).click();
    await page.locator('li.candidate').first().waitFor();
    const resolved = await write('GET', '/resolve_image?reference=team%2Fapp%3A1.0');
    expect(resolved.status).to.equal(200);
    const expected = resolved.body.data.candidates as Array<{
      container_registry_id: string;
      pull_reference: string;
    }>;
    expect(expected.length).to.equal(2);
    const shown = await page.locator('li.candidate').evaluateAll((items) =>
      items.map((item) => ({
        id: item.getAttribute('data-registry'),
        command: item.querySelector('.copy code')?.textContent,
      })),
    );
    // The same candidates; their order (healthy, then probe latency) can change between the
    // page's request and this one, as the monitor probes every 2 s.
    const byId = (a: { id: string | null }, b: { id: string | null }) =>
      String(a.id).localeCompare(String(b.id));
    expect(shown.sort(byId)).to.deep.equal(
      expected
        .map((c) => ({ id: c.container_registry_id, command: `docker pull ${c.pull_reference}` }))
        .sort(byId),
    );
    expect(await page.locator('.summary').textContent()).to.equal('2 registries hold team/app:1.0');
    await page.locator('li.candidate').first().getByRole('button').click();
    await page
      .locator('li.candidate')
      .first()
      .locator('.copied')
      .filter({ hasText: /Copied|Selected/ })
      .waitFor();
    expect(await seriousAxeViolations(page)).to.deep.equal([]);

    // The platform filter: only the Distribution registry holds the arm64 image.
    await page.getByLabel('Platform').fill('linux/arm64');
    await page.getByRole('button', { name: 'Find' }).click();
    await page.locator('.summary').filter({ hasText: '1 registries' }).waitFor();
    const arm = await write('GET', '/resolve_image?reference=team%2Fapp%3A1.0&platform=linux%2Farm64');
    expect(await page.locator('li.candidate').getAttribute('data-registry')).to.equal(
      arm.body.data.candidates[0].container_registry_id,
    );
    // Signed only: nothing is signed here, and the page says so in the API's words.
    await page.getByLabel('Signed only').check();
    await page.getByRole('button', { name: 'Find' }).click();
    const unsigned = await write(
      'GET',
      '/resolve_image?reference=team%2Fapp%3A1.0&platform=linux%2Farm64&signed=true',
    );
    expect(unsigned.status).to.equal(404);
    await page.getByRole('alert').filter({ hasText: unsigned.body.error }).waitFor();
    expect(problems.filter((p) => !/status of 404/.test(p))).to.deep.equal([]);
  });

  it('shows a registry: its entry with credentials masked, its health history and its images', async () => {
    const { page, problems } = await signedInPage();
    await page.getByRole('link', { name: 'bundled' }).click();
    await page.getByRole('heading', { name: 'bundled' }).waitFor();
    const config = await page.locator('pre[data-field="container_registry_config"]').textContent();
    expect(config).to.include('*****');
    expect(await page.content()).not.to.include('hunter2-secret');
    await page.locator('table.images tbody tr').first().waitFor();
    const images = await write('GET', `/container_registry/${ids.bundled}/images`);
    expect(await page.locator('table.images tbody tr').count()).to.equal(images.body.data.length);
    expect(await page.locator('table.images tbody tr td').first().textContent()).to.equal('team/app');
    const history = await write('GET', `/container_registry/${ids.bundled}/health`);
    const rows = await page.locator('caption', { hasText: /^Last \d+ checks/ }).textContent();
    expect(Number(/Last (\d+)/.exec(rows ?? '')![1])).to.be.at.least(history.body.data.history.length - 2);
    expect(await seriousAxeViolations(page)).to.deep.equal([]);
    expect(problems).to.deep.equal([]);
  });
});

describe('dashboard (/ui) in Chromium, with 10,000 registries', function () {
  this.timeout(180_000);
  const COUNT = 10_000;
  let browser: Browser;
  let dir: string;
  let cli: CliProcess | undefined;
  let base: string;
  let watched: DashboardPage | undefined;

  before(async () => {
    browser = await launchBrowser();
    dir = await mkdtemp(path.join(tmpdir(), 'dashboard-10k-'));
    await seedRegistries(path.join(dir, 'data'), COUNT);
    // Anonymous reads allowed: the page works without signing in.
    ({ cli, url: base } = await startServe({
      DATA_DIR: path.join(dir, 'data'),
      API_TOKENS: createToken('viewer', 'read').entry,
      ANONYMOUS_READ: 'true',
      HEALTH_MONITOR_ENABLED: 'false',
      CRAWL_ENABLED: 'false',
    }));
  });
  afterEach(async () => {
    await watched?.close();
    watched = undefined;
  });
  after(async () => {
    await browser?.close();
    await stopServe(cli);
    await rm(dir, { recursive: true, force: true });
  });

  /** The names the API answers for a page of the table (anonymously, as the page asks). */
  async function apiNames(query: string, filter: unknown = {}): Promise<{ names: string[]; total: number }> {
    const response = await fetch(`${base}/container_registries?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(filter),
    });
    expect(response.status).to.equal(200);
    const body = (await response.json()) as { data: Array<{ container_registry_name: string }> };
    return {
      names: body.data.map((entry) => entry.container_registry_name),
      total: Number(response.headers.get('x-total-count')),
    };
  }

  async function shownNames(page: Page): Promise<string[]> {
    return page.locator('table.registries tbody tr th a').allTextContents();
  }

  async function summary(page: Page, text: string): Promise<void> {
    await page.locator('.summary').filter({ hasText: text }).waitFor({ timeout: 15_000 });
  }

  it('pages, sorts and searches (name, tag, health) on the server', async () => {
    watched = await openDashboardPage(browser);
    const { page, problems } = watched;
    const started = Date.now();
    await page.goto(`${base}/ui/`);
    await summary(page, 'Registries 1–25 of 10,000');
    console.log(`      first render of 10,000 registries: ${Date.now() - started} ms`);
    await page.getByText('Anonymous (read only)').waitFor();
    const first = await apiNames('limit=25&skip=0&sort=container_registry_name');
    expect(first.total).to.equal(COUNT);
    expect(first.names[0]).to.equal(seededName(0));
    expect(await shownNames(page)).to.deep.equal(first.names);
    // Health of the visible rows: seeded as every seventh unreachable.
    await page.locator('tr td.health .badge').nth(24).waitFor();
    const badges = await page
      .locator('tr td.health .badge')
      .evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-status')));
    expect(badges).to.deep.equal(first.names.map((_, i) => seededStatus(i)));

    await page.getByRole('button', { name: 'Next' }).click();
    await summary(page, 'Registries 26–50 of 10,000');
    expect(await shownNames(page)).to.deep.equal(
      (await apiNames('limit=25&skip=25&sort=container_registry_name')).names,
    );
    await page.getByRole('button', { name: 'Last' }).click();
    await summary(page, 'Registries 9,976–10,000 of 10,000');
    expect(await page.getByText('Page 400 of 400').count()).to.equal(1);
    expect(await shownNames(page)).to.deep.equal(
      (await apiNames('limit=25&skip=9975&sort=container_registry_name')).names,
    );

    await page.getByRole('button', { name: 'First' }).click();
    await summary(page, 'Registries 1–25 of 10,000');
    await page.getByRole('button', { name: 'Name' }).click();
    await page.locator('th[aria-sort="descending"]').waitFor();
    await page
      .locator('table.registries tbody tr th a')
      .first()
      .filter({ hasText: seededName(COUNT - 1) })
      .waitFor();
    expect(await shownNames(page)).to.deep.equal(
      (await apiNames('limit=25&skip=0&sort=-container_registry_name')).names,
    );

    await page.getByLabel('Name').fill('registry-0424');
    const byName = await apiNames('limit=25&skip=0&sort=-container_registry_name', {
      container_registry_name: { $regex: 'registry-0424', $options: 'i' },
    });
    expect(byName.total).to.equal(10);
    await summary(page, 'Registries 1–10 of 10');
    expect(await shownNames(page)).to.deep.equal(byName.names);

    await page.getByLabel('Name').fill('');
    await page.getByLabel('Tag').fill('team-7');
    await page.locator('select[name="health"]').selectOption('unreachable');
    const filtered = await apiNames('limit=25&skip=0&sort=-container_registry_name&health=unreachable', {
      container_registry_tags: { $in: ['team-7'] },
    });
    expect(filtered.total).to.be.greaterThan(25);
    await summary(page, `Registries 1–25 of ${filtered.total.toLocaleString('en')}`);
    expect(await shownNames(page)).to.deep.equal(filtered.names);
    expect(page.url()).to.match(/#\/\?tag=team-7&health=unreachable&sort=-name$/);

    expect(await seriousAxeViolations(page)).to.deep.equal([]);
    expect(problems).to.deep.equal([]);
  });
});
