import { expect } from 'chai';
import type { CrawlReport } from '../../../src/catalog/model.js';
import { loopbackCrawler, startCatalog, type TestCatalog } from '../../helpers/catalog.js';
import { startFaultProxy, type FaultProxy } from '../../helpers/fault-proxy.js';
import { installGoTool } from '../../helpers/go-tools.js';
import {
  COSIGN_SIGNATURE,
  pushIndex,
  pushPlatformImage,
  pushReferrer,
  type Pushed,
} from '../../helpers/image-fixtures.js';
import { startDistribution, startTestRegistry, type TestRegistry } from '../../helpers/registry.js';

/**
 * What a crawl costs the registry, counted by a loopback proxy in front of real registries (our
 * bundled one, CNCF Distribution v3): a recrawl of unchanged content is about one request per tag
 * (`HEAD`: no manifest, child, config or referrers `GET`), the crawl's requests share a few
 * kept-alive connections (at most the crawl's concurrency, all closed after it), and a resolve by
 * a platform-specific digest finds the index that lists it.
 */

const AMD64 = { os: 'linux', architecture: 'amd64' };
const ARM64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };
const REPOSITORIES = ['team/api', 'team/web', 'team/db'];
const TAGS = ['1.0', '1.1', '1.2', '2.0'];
const CONCURRENCY = 4;

async function crawl(catalog: TestCatalog, id: string): Promise<CrawlReport> {
  const res = await catalog.api.post(`/container_registry/${id}/crawl`);
  expect(res.status, JSON.stringify(res.body)).to.equal(200);
  const report = res.body.data as CrawlReport;
  expect(report.errors, JSON.stringify(report.errors)).to.deep.equal([]);
  expect(report.complete).to.equal(true);
  return report;
}

/** Requests the proxy saw since `before` (a copy of its counts), by `METHOD path` pattern. */
function since(proxy: FaultProxy, before: Map<string, number>, method: string, path: RegExp): number {
  let total = 0;
  for (const [key, n] of proxy.counts) {
    const [m, p] = key.split(' ');
    if (m === method && path.test(p!)) total += n - (before.get(key) ?? 0);
  }
  return total;
}

function total(counts: Map<string, number>): number {
  return [...counts.values()].reduce((sum, n) => sum + n, 0);
}

const registries: Array<{
  name: string;
  start: () => Promise<{ url: string; stop: () => Promise<void> }>;
}> = [
  {
    name: 'the bundled registry',
    start: async () => {
      const registry: TestRegistry = await startTestRegistry();
      return { url: registry.url, stop: () => registry.close() };
    },
  },
  {
    name: 'CNCF Distribution v3',
    start: () => startDistribution({ binary: installGoTool('registry') }),
  },
];

for (const { name, start } of registries) {
  describe(`recrawl cost on ${name}`, function () {
    this.timeout(120_000);
    let upstream: { url: string; stop: () => Promise<void> };
    let proxy: FaultProxy;
    let catalog: TestCatalog;
    let id: string;
    let multi: Pushed & { children: Pushed[] };
    let first: CrawlReport;
    let afterFirst: Map<string, number>;
    let connectionsOfFirst: number;

    before(async () => {
      upstream = await start();
      for (const repository of REPOSITORIES)
        for (const tag of TAGS)
          await pushPlatformImage(upstream.url, repository, tag, AMD64, Buffer.from(`${repository}:${tag}`));
      multi = await pushIndex(upstream.url, 'team/multi', 'latest', [AMD64, ARM64]);
      proxy = await startFaultProxy(upstream.url);
      catalog = await startCatalog('embedded', {
        crawl: loopbackCrawler({ concurrencyPerRegistry: CONCURRENCY }),
      });
      const res = await catalog.api.post('/container_registry', {
        container_registry_name: 'counted',
        container_registry_public_url: proxy.url,
      });
      expect(res.status).to.equal(201);
      id = res.body.data.id as string;
      first = await crawl(catalog, id);
      afterFirst = new Map(proxy.counts);
      connectionsOfFirst = proxy.connections();
    });

    after(async () => {
      await catalog?.stop();
      await proxy?.close();
      await upstream?.stop();
    });

    it('shares a few kept-alive connections between all the requests of a crawl, closed after it', async () => {
      const tags = REPOSITORIES.length * TAGS.length + 1;
      expect(first).to.include({ tags, added: tags });
      expect(total(afterFirst)).to.be.greaterThan(2 * tags);
      // Every request on a new connection would be one connection per request.
      expect(connectionsOfFirst).to.be.within(1, CONCURRENCY);
      // The crawl's sockets are closed when it ends: none stays open at the proxy.
      for (let i = 0; i < 50 && proxy.openConnections() > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(proxy.openConnections()).to.equal(0);
    });

    it('recrawls unchanged content with one HEAD per tag, nothing else read', async () => {
      const before = new Map(proxy.counts);
      const connections = proxy.connections();
      const report = await crawl(catalog, id);
      expect(report).to.include({ added: 0, updated: 0, removed: 0, tags: first.tags });
      const manifestPath = /\/manifests\//;
      expect(since(proxy, before, 'HEAD', manifestPath)).to.equal(first.tags);
      expect(since(proxy, before, 'GET', manifestPath), 'manifest GETs').to.equal(0);
      expect(since(proxy, before, 'GET', /\/blobs\//), 'config GETs').to.equal(0);
      expect(since(proxy, before, 'GET', /\/referrers\//), 'referrers GETs').to.equal(0);
      // Listing: `_catalog`, one `tags/list` per repository; the rest is one HEAD per tag.
      const sent = total(proxy.counts) - total(before);
      expect(report.requests).to.equal(sent);
      expect(sent).to.equal(1 + REPOSITORIES.length + 1 + first.tags);
      expect(sent / first.tags).to.be.lessThan(1.4);
      expect(proxy.connections() - connections).to.be.within(1, CONCURRENCY);
      // The records are as the first crawl wrote them.
      const index = await catalog.api.post('/container_images', { repository: 'team/multi' });
      expect(index.body.data[0]).to.include({ digest: multi.digest, size: multi.size });
      expect(index.body.data[0].platforms).to.have.length(2);
    });

    it('reads again only the manifest of a tag that changed', async () => {
      const changed = await pushPlatformImage(upstream.url, 'team/api', '1.0', ARM64, Buffer.from('new'));
      const before = new Map(proxy.counts);
      const report = await crawl(catalog, id);
      expect(report).to.include({ added: 0, updated: 1, removed: 0 });
      expect(since(proxy, before, 'GET', /\/manifests\//)).to.equal(1);
      const record = await catalog.api.post('/container_images', { repository: 'team/api', tag: '1.0' });
      expect(record.body.data[0]).to.include({ digest: changed.digest });
      expect(record.body.data[0].platforms[0]).to.include({ architecture: 'arm64' });
    });

    it('resolves a platform-specific digest to the index that lists it', async () => {
      const arm = multi.children[1]!.digest;
      const byDigest = await catalog.api.get(`/resolve_image?digest=${arm}`);
      expect(byDigest.status, JSON.stringify(byDigest.body)).to.equal(200);
      expect(byDigest.body.data.candidates).to.have.length(1);
      expect(byDigest.body.data.candidates[0]).to.include({
        container_registry_id: id,
        digest: multi.digest,
        pull_reference: `${proxy.host}/team/multi:latest`,
      });
      const byReference = await catalog.api.get(`/resolve_image?reference=team/multi@${arm}`);
      expect(byReference.status).to.equal(200);
      expect(byReference.body.data.candidates[0].digest).to.equal(multi.digest);
      expect((await catalog.api.get(`/resolve_image?reference=team/api@${arm}`)).status).to.equal(404);
      // The index's own digest still resolves to it.
      const own = await catalog.api.get(`/resolve_image?digest=${multi.digest}`);
      expect(own.body.data.candidates.map((c: { digest: string }) => c.digest)).to.deep.equal([multi.digest]);
    });
  });
}

describe('recrawl keeps referrer counts fresh within their maximum age', function () {
  this.timeout(60_000);
  let registry: TestRegistry;
  after(async () => {
    await registry?.close();
  });

  it('keeps known counts while fresh, reads them again once older than the maximum age', async () => {
    registry = await startTestRegistry();
    const image = await pushPlatformImage(registry.url, 'team/app', '1.0', AMD64);
    const register = async (catalog: TestCatalog) => {
      const res = await catalog.api.post('/container_registry', {
        container_registry_name: 'signed',
        container_registry_public_url: registry.url,
      });
      return res.body.data.id as string;
    };
    const signatures = async (catalog: TestCatalog) =>
      (await catalog.api.post('/container_images', { repository: 'team/app' })).body.data[0].referrers
        .signatures as number;
    const fresh = await startCatalog('embedded', { crawl: loopbackCrawler() });
    const stale = await startCatalog('embedded', { crawl: loopbackCrawler({ referrersMaxAgeMs: 0 }) });
    try {
      const freshId = await register(fresh);
      const staleId = await register(stale);
      await crawl(fresh, freshId);
      await crawl(stale, staleId);
      expect(await signatures(fresh)).to.equal(0);
      await pushReferrer(registry.url, 'team/app', image, COSIGN_SIGNATURE);
      await crawl(fresh, freshId);
      await crawl(stale, staleId);
      // The documented trade: a referrer pushed since shows after at most the maximum age.
      expect(await signatures(fresh)).to.equal(0);
      expect(await signatures(stale)).to.equal(1);
    } finally {
      await fresh.stop();
      await stale.stop();
    }
  });
});
