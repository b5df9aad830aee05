import { expect } from 'chai';
import { createCatalog, type Catalog } from '../../../src/catalog/app.js';
import { AddressPolicy } from '../../../src/catalog/health/address-policy.js';
import { createProber } from '../../../src/catalog/health/probe.js';
import { CrawlerJob } from '../../../src/catalog/jobs/crawler.js';
import { createLogger } from '../../../src/shared/logger.js';
import { SchemaSet } from '../../../src/shared/schemas.js';
import { loopbackCrawler, openMongoTestStore, TEST_CIPHER, type TestStore } from '../../helpers/catalog.js';
import { ManualClock } from '../../helpers/clock.js';
import { pushPlatformImage } from '../../helpers/image-fixtures.js';
import { serve, type Target } from '../../helpers/probe-targets.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';

const INTERVAL = 600_000;

interface Replica {
  readonly opened: TestStore;
  readonly catalog: Catalog;
  readonly job: CrawlerJob;
}

/** One catalog replica on the shared database, with health checks, the image index and its crawler job. */
async function replica(database: string, owner: string, clock: ManualClock): Promise<Replica> {
  const opened = await openMongoTestStore(database);
  const logger = createLogger(owner, 'silent');
  const catalog = createCatalog({
    store: opened.store,
    schemas: new SchemaSet(),
    logger,
    bodyLimitBytes: 1 << 20,
    cipher: TEST_CIPHER,
    health: {
      store: opened.healthStore,
      probe: createProber({
        policy: new AddressPolicy({ allow: ['127.0.0.0/8'], deny: [] }),
        defaultTimeoutMs: 2000,
      }),
      historySize: 5,
    },
    images: { store: opened.imageStore, crawl: loopbackCrawler() },
  });
  const job = new CrawlerJob({
    registries: opened.store,
    healthStore: opened.healthStore,
    imageStore: opened.imageStore,
    images: catalog.images!,
    config: {
      enabled: true,
      intervalMs: INTERVAL,
      concurrencyPerRegistry: 4,
      concurrentRegistries: 4,
      requestBudget: 1000,
      timeoutMs: 10_000,
      maxManifestBytes: 1 << 20,
      maxRetryAfterMs: 1000,
      referrersMaxAgeMs: 3_600_000,
    },
    logger,
    owner,
    clock,
  });
  return { opened, catalog, job };
}

describe('image crawler job across replicas (two jobs on one FerretDB/MongoDB)', function () {
  this.timeout(60_000);
  let registry: TestRegistry;
  let down: Target;
  let replicas: Replica[];
  let clock: ManualClock;
  let catalogRequests: () => number;

  before(async () => {
    registry = await startTestRegistry();
    await pushPlatformImage(registry.url, 'team/app', '1.0', { os: 'linux', architecture: 'amd64' });
    down = await serve((_req, res) => res.writeHead(503).end());
    const database = `crawler_${Math.floor(Math.random() * 0xffffffff).toString(16)}`;
    clock = new ManualClock(Math.ceil(Date.now() / INTERVAL) * INTERVAL);
    replicas = [await replica(database, 'replica-a', clock), await replica(database, 'replica-b', clock)];
    const seen: string[] = [];
    registry.server.server.on('request', (req: { url?: string }) => seen.push(req.url ?? ''));
    catalogRequests = () => seen.filter((url) => url.startsWith('/v2/_catalog')).length;
  });
  after(async () => {
    for (const { opened } of replicas ?? []) await opened.cleanup().catch(() => undefined);
    await registry?.close();
    await down?.close();
  });

  it('crawls each healthy, enabled registry once per interval cluster-wide; skips the rest', async () => {
    const [a, b] = replicas;
    const registries = a!.catalog.registries;
    const create = async (name: string, url: string, config: Record<string, unknown> = {}) =>
      (
        await registries.create({
          container_registry_name: name,
          container_registry_public_url: url,
          container_registry_config: config,
        })
      ).document;
    const healthy = await create('healthy', registry.url);
    const disabled = await create('disabled', registry.url, { crawl: { enabled: false } });
    const unhealthy = await create('unhealthy', down.url);
    const neverProbed = await create('never probed', registry.url);
    for (const document of [healthy, disabled, unhealthy]) await a!.catalog.health!.probeAndRecord(document);

    const sweeps = await Promise.all([a!.job.sweep(), b!.job.sweep()]);
    expect(sweeps.map((sweep) => sweep.claimed).sort()).to.deep.equal([0, 1]);
    expect(catalogRequests()).to.equal(1);
    const report = await a!.opened.imageStore.report(healthy.container_registry_id);
    expect(report).to.include({ complete: true, repositories: 1, tags: 1 });
    // The records on MongoDB/FerretDB answer the resolver and dotted queries like SQLite does.
    const resolved = await b!.catalog.images!.resolve({ reference: 'team/app:1.0', platform: 'linux/amd64' });
    expect(resolved.candidates.map((c) => c.container_registry_id)).to.deep.equal([
      healthy.container_registry_id,
    ]);
    const page = { limit: 10, skip: 0, sort: [] as const };
    const arm = await b!.catalog.images!.query({ 'platforms.architecture': 'arm64' }, page);
    expect(arm.total).to.equal(0);
    const unsigned = await b!.catalog.images!.query(
      { 'referrers.signatures': 0, repository: 'team/app' },
      page,
    );
    expect(unsigned.total).to.equal(1);
    for (const skipped of [disabled, unhealthy, neverProbed])
      expect(await a!.opened.imageStore.report(skipped.container_registry_id)).to.equal(undefined);

    // The same slot again: nobody crawls. The next interval: exactly one replica does.
    await Promise.all([a!.job.sweep(), b!.job.sweep()]);
    expect(catalogRequests()).to.equal(1);
    clock.advance(INTERVAL);
    await Promise.all([a!.job.sweep(), b!.job.sweep()]);
    expect(catalogRequests()).to.equal(2);
  });
});
