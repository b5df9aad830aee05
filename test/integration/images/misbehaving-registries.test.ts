import { createHash } from 'node:crypto';
import type http from 'node:http';
import { expect } from 'chai';
import { AddressPolicy } from '../../../src/catalog/health/address-policy.js';
import { createCrawler, type CrawlerLimits } from '../../../src/catalog/health/crawl.js';
import type { CrawlReport } from '../../../src/catalog/model.js';
import { loopbackCrawler, startCatalog, TEST_CRAWL_LIMITS, type TestCatalog } from '../../helpers/catalog.js';
import { serve, type Target } from '../../helpers/probe-targets.js';

/**
 * Loopback fakes for what real registries get wrong, each crawled through the real crawler:
 * `Link` dropped half-way, `Link` to another origin, `_catalog` refused with configured
 * repositories, 429 with `Retry-After`, a listing that never ends (budget), a slow registry
 * (timeout), malformed JSON and an oversized manifest. None may crash the crawl or answer 500.
 */

const CONFIG = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64' }));
const MANIFEST = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: digestOf(CONFIG),
      size: CONFIG.length,
    },
    layers: [],
  }),
);

function digestOf(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => boolean | void;

/**
 * A registry speaking just enough of the distribution API: `/v2/`, one repository per entry of
 * `tags`, manifests and the config blob. `override` answers first (return true when it did).
 */
function fakeRegistry(tags: Record<string, string[]>, override: Handler = () => false) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    if (override(req, res, url)) return;
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (url.pathname === '/v2/') return json(200, {});
    if (url.pathname === '/v2/_catalog') return json(200, { repositories: Object.keys(tags) });
    const match = /^\/v2\/(.+)\/(tags\/list|manifests|blobs|referrers)\/?(.*)$/.exec(url.pathname);
    if (!match || !(match[1]! in tags)) return json(404, { errors: [{ code: 'NAME_UNKNOWN' }] });
    const [, name, kind] = match;
    if (kind === 'tags/list') return json(200, { name, tags: tags[name!] });
    if (kind === 'blobs') return res.writeHead(200).end(CONFIG);
    if (kind === 'referrers') return json(404, {});
    res.writeHead(200, {
      'content-type': 'application/vnd.oci.image.manifest.v1+json',
      'docker-content-digest': digestOf(MANIFEST),
      'content-length': String(MANIFEST.length),
    });
    res.end(req.method === 'HEAD' ? undefined : MANIFEST);
  };
}

describe('crawling misbehaving registries', function () {
  this.timeout(60_000);
  const open: Array<{ close(): Promise<void> } | { stop(): Promise<void> }> = [];
  afterEach(async () => {
    for (const item of open.splice(0)) await ('close' in item ? item.close() : item.stop());
  });

  async function crawlFake(
    handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
    options: { limits?: Partial<CrawlerLimits>; config?: Record<string, unknown> } = {},
  ): Promise<{ report: CrawlReport; catalog: TestCatalog; target: Target; id: string }> {
    const target = await serve(handler);
    open.push(target);
    const catalog = await startCatalog('embedded', { crawl: loopbackCrawler(options.limits) });
    open.push(catalog);
    const created = await catalog.api.post('/container_registry', {
      container_registry_name: 'fake',
      container_registry_public_url: target.url,
      container_registry_config: options.config ?? {},
    });
    const id = created.body.data.id as string;
    const res = await catalog.api.post(`/container_registry/${id}/crawl`);
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    return { report: res.body.data as CrawlReport, catalog, target, id };
  }

  it('continues a listing whose Link stops half-way (a full page without Link)', async () => {
    const names = Array.from({ length: 2500 }, (_, i) => `r/${String(i).padStart(4, '0')}`);
    const { report } = await crawlFake(
      fakeRegistry({}, (_req, res, url) => {
        if (url.pathname !== '/v2/_catalog') return false;
        const last = url.searchParams.get('last');
        const start = last === null ? 0 : names.indexOf(last) + 1;
        const page = names.slice(start, start + 1000);
        // Link on the first page only, as some registries do.
        if (start === 0) res.setHeader('link', `</v2/_catalog?n=1000&last=${page.at(-1)}>; rel="next"`);
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ repositories: page }));
        return true;
      }),
      // Only r/24xx are crawled further: they are on the third page, reached only by continuing.
      { config: { crawl: { repositories: ['r/24*'] } } },
    );
    expect(report.errors).to.deep.equal([]);
    expect(report).to.include({ repositories: 100, complete: true });
  });

  it('refuses a Link to another origin: no request goes there, the crawl is partial', async () => {
    const elsewhere = await serve((_req, res) => res.writeHead(200).end('{"repositories":["stolen"]}'));
    open.push(elsewhere);
    const { report } = await crawlFake(
      fakeRegistry({ 'team/app': ['1.0'] }, (_req, res, url) => {
        if (url.pathname !== '/v2/_catalog') return false;
        res.setHeader('link', `<${elsewhere.url}/v2/_catalog?n=1000&last=team/app>; rel="next"`);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"repositories":["team/app"]}');
        return true;
      }),
    );
    expect(elsewhere.requests).to.have.length(0);
    expect(report.complete).to.equal(false);
    expect(report.errors.join(' ')).to.match(/another origin/);
  });

  for (const status of [401, 404]) {
    it(`lists the configured repositories when _catalog answers ${status}`, async () => {
      const refuse: Handler = (_req, res, url) => {
        if (url.pathname !== '/v2/_catalog') return false;
        res.writeHead(status, { 'content-type': 'application/json' }).end('{"errors":[]}');
        return true;
      };
      const { report, catalog, id } = await crawlFake(fakeRegistry({ 'team/app': ['1.0', '2.0'] }, refuse), {
        config: { crawl: { repositories: ['team/app'] } },
      });
      expect(report.errors).to.deep.equal([]);
      expect(report).to.include({ complete: true, repositories: 1, tags: 2 });
      expect((await catalog.api.get(`/container_registry/${id}/images`)).body.data).to.have.length(2);
      // Without configured repositories the same registry gives a partial crawl, not a crash.
      const bare = await crawlFake(fakeRegistry({ 'team/app': ['1.0'] }, refuse));
      expect(bare.report.complete).to.equal(false);
      expect(bare.report.errors.join(' ')).to.include(`answered ${status}`);
    });
  }

  it('waits out 429 with Retry-After and completes', async () => {
    let limited = 0;
    const started = Date.now();
    const { report } = await crawlFake(
      fakeRegistry({ 'team/app': ['1.0'] }, (_req, res, url) => {
        if (!url.pathname.endsWith('/tags/list') || limited++ > 0) return false;
        res.writeHead(429, { 'retry-after': '1' }).end();
        return true;
      }),
    );
    expect(report.errors).to.deep.equal([]);
    expect(report).to.include({ complete: true, tags: 1 });
    expect(Date.now() - started).to.be.greaterThanOrEqual(1000);
  });

  it('stops a listing that never ends at the request budget', async () => {
    let page = 0;
    const { report } = await crawlFake(
      fakeRegistry({}, (_req, res, url) => {
        if (url.pathname !== '/v2/_catalog') return false;
        page++;
        res.setHeader('link', `</v2/_catalog?n=1000&page=${page}>; rel="next"`);
        res.writeHead(200, { 'content-type': 'application/json' }).end(`{"repositories":["r/${page}"]}`);
        return true;
      }),
      { limits: { requestBudget: 50 } },
    );
    expect(report.complete).to.equal(false);
    expect(report.requests).to.equal(50);
    expect(report.errors.join(' ')).to.match(/budget/);
  });

  it('stops a slow registry at the crawl timeout, partial', async () => {
    const { report } = await crawlFake(
      (req, res) => {
        setTimeout(
          () => fakeRegistry({ 'team/app': ['1', '2', '3', '4', '5', '6', '7', '8'] })(req, res),
          400,
        );
      },
      { limits: { timeoutMs: 1_000, concurrencyPerRegistry: 1 } },
    );
    expect(report.complete).to.equal(false);
    expect(report.errors.join(' ')).to.match(/timed out/);
  });

  it('goes through the SSRF guard: an address the policy refuses gets no packet', async () => {
    const target = await serve(fakeRegistry({ 'team/app': ['1.0'] }));
    open.push(target);
    // Loopback stands in for the forbidden class: the default policy refuses it.
    const crawl = createCrawler({
      policy: new AddressPolicy({ allow: [], deny: [] }),
      limits: TEST_CRAWL_LIMITS,
    });
    const catalog = await startCatalog('embedded', { crawl });
    open.push(catalog);
    const created = await catalog.api.post('/container_registry', {
      container_registry_name: 'forbidden',
      container_registry_public_url: target.url,
    });
    const res = await catalog.api.post(`/container_registry/${created.body.data.id}/crawl`);
    expect(res.status).to.equal(200);
    expect(res.body.data.complete).to.equal(false);
    expect(res.body.data.errors.join(' ')).to.match(/loopback|refused|not allowed/i);
    expect(target.connections()).to.equal(0);
  });

  it('reports malformed JSON and oversized manifests as errors, never a 500', async () => {
    const { report, catalog, id } = await crawlFake(
      fakeRegistry({ 'team/bad': ['1.0'], 'team/big': ['1.0'], 'team/ok': ['1.0'] }, (req, res, url) => {
        if (url.pathname === '/v2/team/bad/tags/list') {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"tags": [');
          return true;
        }
        if (url.pathname.startsWith('/v2/team/big/manifests/')) {
          res.writeHead(200, {
            'content-type': 'application/vnd.oci.image.manifest.v1+json',
            'content-length': '9000000',
          });
          if (req.method === 'HEAD') res.end();
          else {
            // A first crawl GETs unknown tags without a HEAD: the declared length is the cap's cue.
            res.flushHeaders();
            setTimeout(() => res.destroy(), 50);
          }
          return true;
        }
        return false;
      }),
    );
    expect(report.complete).to.equal(false);
    expect(report.errors.join(' ')).to.match(/team\/bad.*not valid JSON/);
    expect(report.errors.join(' '), JSON.stringify(report.errors)).to.match(/over the cap/);
    const listed = (await catalog.api.get(`/container_registry/${id}/images`)).body.data;
    expect(listed.map((r: { repository: string }) => r.repository)).to.deep.equal(['team/ok']);
  });
});
