import { expect } from 'chai';
import request from 'supertest';
import { AddressPolicy } from '../../../src/catalog/health/address-policy.js';
import { createProber } from '../../../src/catalog/health/probe.js';
import type { ContainerImage, CrawlReport } from '../../../src/catalog/model.js';
import { loopbackCrawler, startCatalog, type TestCatalog } from '../../helpers/catalog.js';
import {
  COSIGN_SIGNATURE,
  pushCosignSignatureTag,
  pushFallbackTag,
  pushIndex,
  pushPlatformImage,
  pushReferrer,
  putManifest,
  SPDX_SBOM,
  OCI_MANIFEST,
  type Pushed,
} from '../../helpers/image-fixtures.js';
import { startDistribution, startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { tokenFixture, USERS } from '../../helpers/token-auth.js';

/**
 * The image index against real registries on loopback: our bundled registry (referrers API, and
 * in token mode), CNCF Distribution 2.8 from Debian (no referrers API: the fallback tag), images
 * and artifacts pushed over HTTP. The catalog may reach loopback only.
 */

const AMD64 = { os: 'linux', architecture: 'amd64' };
const ARM64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };

async function register(
  catalog: TestCatalog,
  name: string,
  url: string,
  config: Record<string, unknown> = {},
) {
  const res = await catalog.api.post('/container_registry', {
    container_registry_name: name,
    container_registry_public_url: url,
    container_registry_config: config,
  });
  expect(res.status, JSON.stringify(res.body)).to.equal(201);
  return res.body.data.id as string;
}

async function crawl(catalog: TestCatalog, id: string): Promise<CrawlReport> {
  const res = await catalog.api.post(`/container_registry/${id}/crawl`);
  expect(res.status, JSON.stringify(res.body)).to.equal(200);
  return res.body.data as CrawlReport;
}

async function images(catalog: TestCatalog, filter: unknown, query = ''): Promise<ContainerImage[]> {
  const res = await catalog.api.post(`/container_images${query}`, filter);
  expect(res.status, JSON.stringify(res.body)).to.equal(200);
  return res.body.data as ContainerImage[];
}

describe('image index on real registries', function () {
  this.timeout(60_000);
  let catalog: TestCatalog;
  let ours: TestRegistry;
  let distribution: Awaited<ReturnType<typeof startDistribution>>;
  let oursId: string;
  let distributionId: string;
  let app: Pushed;
  let multi: Pushed & { children: Pushed[] };
  let onDistribution: Pushed;

  before(async () => {
    ours = await startTestRegistry();
    distribution = await startDistribution();
    const probe = createProber({
      policy: new AddressPolicy({ allow: ['127.0.0.0/8', '::1/128'], deny: [] }),
      defaultTimeoutMs: 2000,
    });
    catalog = await startCatalog('embedded', { probe, crawl: loopbackCrawler() });

    app = await pushPlatformImage(ours.url, 'team/app', '1.0', AMD64);
    multi = await pushIndex(ours.url, 'team/app', 'multi', [AMD64, ARM64]);
    // The same image in another repository: found by digest across repositories.
    await putManifest(ours.url, 'team/other', '1.0', app.bytes, OCI_MANIFEST).catch(async () => {
      await pushPlatformImage(
        ours.url,
        'team/other',
        '1.0',
        AMD64,
        Buffer.from('layer of team/app:1.0 amd64'),
      );
    });
    await pushReferrer(ours.url, 'team/app', app, COSIGN_SIGNATURE);
    await pushReferrer(ours.url, 'team/app', app, SPDX_SBOM);

    onDistribution = await pushPlatformImage(distribution.url, 'team/app', '1.0', AMD64);
    const signature = await pushReferrer(distribution.url, 'team/app', onDistribution, COSIGN_SIGNATURE);
    const sbom = await pushReferrer(distribution.url, 'team/app', onDistribution, SPDX_SBOM);
    await pushFallbackTag(distribution.url, 'team/app', onDistribution, [
      { pushed: signature, artifactType: COSIGN_SIGNATURE },
      { pushed: sbom, artifactType: SPDX_SBOM },
    ]);
    await pushCosignSignatureTag(distribution.url, 'team/app', onDistribution);

    oursId = await register(catalog, 'ours', ours.url);
    distributionId = await register(catalog, 'distribution', distribution.url);
    for (const id of [oursId, distributionId])
      expect((await catalog.api.get(`/check_container_health/${id}`)).body.data.status).to.equal('healthy');
  });

  after(async () => {
    await catalog?.stop();
    await ours?.close();
    await distribution?.stop();
  });

  it('crawls the bundled registry: tags, an index with its platforms and size, referrers by kind', async () => {
    const report = await crawl(catalog, oursId);
    expect(report).to.include({ complete: true, repositories: 2, tags: 3, removed: 0 });
    expect(report.errors).to.deep.equal([]);
    expect(report.added).to.equal(3);
    const records = await images(catalog, { repository: 'team/app' }, '?sort=tag');
    expect(records.map((record) => record.tag)).to.deep.equal(['1.0', 'multi']);
    const [single, index] = records;
    expect(single).to.include({ digest: app.digest, size: app.size, media_type: OCI_MANIFEST });
    expect(single!.platforms).to.deep.equal([{ ...AMD64, digest: app.digest }]);
    expect(single!.referrers).to.deep.include({ signatures: 1, sboms: 1, attestations: 0, other: 0 });
    expect(single!.pull_reference).to.equal(`${ours.host}/team/app:1.0`);
    expect(index).to.include({ digest: multi.digest, size: multi.size });
    expect(index!.platforms.map((p) => p.architecture)).to.deep.equal(['amd64', 'arm64']);
    expect(index!.platforms[1]).to.deep.equal({ ...ARM64, digest: multi.children[1]!.digest });
    // Dotted paths into platforms and referrers.
    expect((await images(catalog, { 'platforms.architecture': 'arm64' })).map((r) => r.tag)).to.deep.equal([
      'multi',
    ]);
    // Referrers belong to a repository: team/other holds the same digest unsigned.
    expect(
      (await images(catalog, { 'referrers.signatures': { $gt: 0 } })).map((r) => r.repository),
    ).to.deep.equal(['team/app']);
    const last = await catalog.api.get(`/container_registry/${oursId}/crawl`);
    expect(last.body.data).to.deep.equal(report);
    const metrics = (await catalog.api.get('/metrics')).text;
    expect(metrics).to.match(/catalog_crawl_duration_seconds_count\{complete="true"\} 1/);
    expect(metrics).to.match(/catalog_crawl_requests_total [1-9]/);
    expect(metrics).to.include(`catalog_image_records{registry_id="${oursId}"} 3`);
  });

  it('crawls Distribution without a referrers API: fallback and cosign tags counted, not listed', async () => {
    const report = await crawl(catalog, distributionId);
    expect(report, JSON.stringify(report.errors)).to.include({ complete: true, repositories: 1, tags: 1 });
    const listed = await catalog.api.get(`/container_registry/${distributionId}/images`);
    expect(listed.body.data.map((r: ContainerImage) => r.tag)).to.deep.equal(['1.0']);
    expect(listed.body.data[0].referrers).to.deep.include({ signatures: 2, sboms: 1 });
  });

  it('resolves by tag, by digest across repositories, by platform and signed', async () => {
    const byTag = await catalog.api.get('/resolve_image?reference=team/app:1.0');
    expect(byTag.status).to.equal(200);
    expect(
      byTag.body.data.candidates.map((c: { container_registry_id: string }) => c.container_registry_id),
    ).to.have.members([oursId, distributionId]);
    const byDigest = await catalog.api.get(`/resolve_image?digest=${app.digest}`);
    expect(
      byDigest.body.data.candidates.map((c: { pull_reference: string }) => c.pull_reference),
      // Distribution holds the same bytes, so the same digest.
    ).to.have.members([
      `${ours.host}/team/app:1.0`,
      `${ours.host}/team/other:1.0`,
      `${distribution.host}/team/app:1.0`,
    ]);
    const repoDigest = await catalog.api.get(`/resolve_image?reference=team/other@${app.digest}`);
    expect(repoDigest.body.data.candidates).to.have.length(1);
    const arm = await catalog.api.get('/resolve_image?reference=team/app:multi&platform=linux/arm64');
    expect(arm.status).to.equal(200);
    expect(
      (await catalog.api.get('/resolve_image?reference=team/app:1.0&platform=linux/arm64')).status,
    ).to.equal(404);
    expect((await catalog.api.get('/resolve_image?reference=team/app:1.0&signed=true')).status).to.equal(200);
    const unsigned = await catalog.api.get('/resolve_image?reference=team/app:multi&signed=true');
    expect(unsigned.status).to.equal(404);
    expect(unsigned.body.success).to.equal(false);
    expect((await catalog.api.get('/resolve_image?reference=nobody/here:1')).status).to.equal(404);
    expect((await catalog.api.get('/resolve_image?reference=Bad%20Ref')).status).to.equal(400);
  });

  it('names each candidate by its registry as stored now', async () => {
    const named = async () =>
      (await catalog.api.get('/resolve_image?reference=team/app:1.0')).body.data.candidates.find(
        (c: { container_registry_id: string }) => c.container_registry_id === oursId,
      ).container_registry_name;
    const before = await named();
    const renamed = await catalog.api.put(`/container_registry/${oursId}`, {
      $set: { container_registry_name: 'renamed-bundled' },
    });
    expect(renamed.status).to.equal(200);
    expect(await named()).to.equal('renamed-bundled');
    await catalog.api.put(`/container_registry/${oursId}`, { $set: { container_registry_name: before } });
    expect(await named()).to.equal(before);
  });

  it('answers resolve before Express exactly as the Express route does', async () => {
    // The front door answers GET /resolve_image itself (issue 14's latency target); Express's
    // route is the reference for every outcome: found, filtered, refused, malformed, repeated.
    for (const query of [
      'reference=team/app:1.0',
      `digest=${app.digest}`,
      'reference=team/app:multi&platform=linux/arm64',
      'reference=team/app:1.0&signed=true',
      'reference=team/app:multi&signed=true',
      'reference=nobody/here:1',
      'reference=Bad%20Ref',
      'reference=team/app:1.0&reference=team/app:multi',
      'reference=team/app:1.0&signed=maybe',
      '',
    ]) {
      const front = await catalog.api.get(`/resolve_image?${query}`);
      const routed = await request(catalog.catalog.app).get(`/resolve_image?${query}`);
      expect(front.status, query).to.equal(routed.status);
      expect(front.headers['content-type'], query).to.equal(routed.headers['content-type']);
      expect(front.headers['content-length'], query).to.equal(routed.headers['content-length']);
      // Every request has its own id; the rest of the answer is the same.
      const { request_id: _front, ...frontBody } = front.body as Record<string, unknown>;
      const { request_id: _routed, ...routedBody } = routed.body as Record<string, unknown>;
      expect(frontBody, query).to.deep.equal(routedBody);
    }
  });

  it('a registry going down drops to the end of the candidates', async () => {
    const before = await catalog.api.get('/resolve_image?reference=team/app:1.0');
    expect(before.body.data.candidates.every((c: { status: string }) => c.status === 'healthy')).to.equal(
      true,
    );
    await distribution.stop();
    expect(
      (await catalog.api.get(`/check_container_health/${distributionId}`)).body.data.status,
    ).to.not.equal('healthy');
    const after = await catalog.api.get('/resolve_image?reference=team/app:1.0');
    const candidates = after.body.data.candidates as Array<{ container_registry_id: string; status: string }>;
    expect(candidates.at(-1)!.container_registry_id).to.equal(distributionId);
    expect(candidates[0]!.status).to.equal('healthy');
    // health= narrows a query to registries of that last status.
    const healthyOnly = await images(catalog, { repository: 'team/app', tag: '1.0' }, '?health=healthy');
    expect(healthyOnly.map((r) => r.container_registry_id)).to.deep.equal([oursId]);
    const downOnly = await images(catalog, { repository: 'team/app' }, '?health=unreachable,unhealthy');
    expect(downOnly.map((r) => r.container_registry_id)).to.deep.equal([distributionId]);
    // A crawl of a registry that is down is partial and removes nothing.
    const failed = await crawl(catalog, distributionId);
    expect(failed.complete).to.equal(false);
    expect(failed.removed).to.equal(0);
    expect((await catalog.api.get(`/container_registry/${distributionId}/images`)).body.data).to.have.length(
      1,
    );
  });

  it('an image deleted upstream disappears after a complete crawl and not after a failed one', async () => {
    const gone = await pushPlatformImage(ours.url, 'team/gone', '1.0', AMD64);
    expect((await crawl(catalog, oursId)).added).to.equal(1);
    const deleted = await fetch(`${ours.url}/v2/team/gone/manifests/${gone.digest}`, { method: 'DELETE' });
    expect(deleted.status).to.equal(202);
    // A second catalog holding the same records, whose crawls stop at a budget of 3 requests.
    const starved = await startCatalog('embedded', { crawl: loopbackCrawler({ requestBudget: 3 }) });
    try {
      const id = await register(starved, 'ours', ours.url);
      await starved.imageStore.writeSeen(
        (await images(catalog, { repository: 'team/gone' })).map((r) => ({
          ...r,
          container_registry_id: id,
        })),
      );
      const partial = await crawl(starved, id);
      expect(partial.complete).to.equal(false);
      expect(partial.errors.join(' ')).to.match(/budget/);
      expect(partial.removed).to.equal(0);
      expect((await images(starved, { repository: 'team/gone' })).length).to.equal(1);
    } finally {
      await starved.stop();
    }
    const complete = await crawl(catalog, oursId);
    expect(complete.complete).to.equal(true);
    expect(complete.removed).to.equal(1);
    expect(await images(catalog, { repository: 'team/gone' })).to.deep.equal([]);
  });

  it('deleting a registry deletes its records and crawl report', async () => {
    const other = await register(catalog, 'ours again', ours.url);
    await crawl(catalog, other);
    expect(await images(catalog, { container_registry_id: other })).to.have.length.greaterThan(0);
    expect((await catalog.api.delete(`/container_registry/${other}`)).status).to.equal(200);
    expect(await images(catalog, { container_registry_id: other })).to.deep.equal([]);
    expect(await catalog.imageStore.report(other)).to.equal(undefined);
  });
});

describe('image index on a registry needing Bearer tokens', function () {
  this.timeout(60_000);
  let catalog: TestCatalog;
  let registry: TestRegistry;

  before(async () => {
    const { config } = await tokenFixture();
    registry = await startTestRegistry({ authConfig: config });
    catalog = await startCatalog('embedded', { crawl: loopbackCrawler() });
  });
  after(async () => {
    await catalog?.stop();
    await registry?.close();
  });

  it('logs in with catalog and pull scopes and reads what the user may pull', async () => {
    const { TokenClient } = await import('../../helpers/token-auth.js');
    const alice = new TokenClient(registry.url, USERS.alice);
    expect((await alice.pushImage('home/alice/app', '1.0', Buffer.from('alice layer'))).status).to.equal(201);
    const anonymous = await register(catalog, 'anonymous', registry.url);
    // Anonymous tokens list nothing of alice's namespace.
    const anonymousReport = await crawl(catalog, anonymous);
    expect(anonymousReport).to.include({ repositories: 0, tags: 0 });
    const id = await register(catalog, 'as alice', registry.url, {
      credentials: { username: USERS.alice.username, password: USERS.alice.password },
    });
    const report = await crawl(catalog, id);
    expect(report.errors).to.deep.equal([]);
    expect(report).to.include({ complete: true, repositories: 1, tags: 1 });
    const found = await images(catalog, { container_registry_id: id });
    expect(found.map((r) => `${r.repository}:${r.tag}`)).to.deep.equal(['home/alice/app:1.0']);
  });
});
