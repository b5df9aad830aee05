import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import { expect } from 'chai';
import { sha256, startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { requestToken, TokenClient, tokenFixture, USERS } from '../../helpers/token-auth.js';

const QUOTA = 100_000;
const NAMESPACE = 'home/alice/';

describe('registry quotas per namespace (token mode)', function () {
  this.timeout(30_000);
  let registry: TestRegistry;
  let dir: string;
  let clock = Date.now();
  let alice: TokenClient;

  const usage = () => registry.tokenMode!.quotas.usage().find((entry) => entry.namespace === NAMESPACE)!;
  const pushToken = async (name = 'home/alice/app') =>
    (await requestToken(registry.url, USERS.alice, [`repository:${name}:pull,push,delete`])).token!;
  const startUpload = async (token: string, name = 'home/alice/app') => {
    const response = await fetch(`${registry.url}/v2/${name}/blobs/uploads/`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(response.status).to.equal(202);
    return response.headers.get('location')!;
  };
  const patch = (token: string, location: string, data: Buffer) =>
    fetch(`${registry.url}${location}`, {
      method: 'PATCH',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/octet-stream' },
      body: data,
    });

  beforeEach(async () => {
    clock = Date.now();
    let config: Record<string, unknown>;
    ({ dir, config } = await tokenFixture());
    config.namespaces = [
      {
        prefix: NAMESPACE,
        quota_bytes: QUOTA,
        rules: [{ subjects: ['alice'], actions: ['pull', 'push', 'delete'] }],
      },
    ];
    registry = await startTestRegistry({ authConfig: config, uploadTimeoutSeconds: 60, now: () => clock });
    alice = new TokenClient(registry.url, USERS.alice);
  });
  afterEach(async () => {
    await registry?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('counts the unique blobs and manifests a namespace references', async () => {
    const layer = randomBytes(30_000);
    expect((await alice.pushImage('home/alice/one', '1', layer)).status).to.equal(201);
    expect((await alice.pushImage('home/alice/two', '1', layer)).status).to.equal(201);
    const { referencedBytes, reservedBytes } = usage();
    // One layer (shared), two configs and two manifests of a few hundred bytes.
    expect(referencedBytes).to.be.within(30_000, 32_000);
    expect(reservedBytes).to.equal(0);
  });

  it('refuses a push past the quota with 403 DENIED giving the numbers, and stays exact', async () => {
    expect((await alice.pushImage('home/alice/app', '1', randomBytes(60_000))).status).to.equal(201);
    const before = usage().referencedBytes;
    const big = randomBytes(50_000);
    const response = await alice.send(
      `/v2/home/alice/app/blobs/uploads/?digest=${sha256(big)}`,
      'repository:home/alice/app:push',
      {
        method: 'POST',
        body: big,
      },
    );
    expect(response.status).to.equal(403);
    const body = (await response.json()) as {
      errors: { code: string; message: string; detail: Record<string, number> }[];
    };
    expect(body.errors[0]!.code).to.equal('DENIED');
    expect(body.errors[0]!.message).to.equal(
      `quota exceeded in namespace ${NAMESPACE}: ${before} bytes used or reserved + 50000 bytes this upload sends > quota ${QUOTA} bytes`,
    );
    expect(body.errors[0]!.detail).to.deep.equal({
      namespace: NAMESPACE,
      usedBytes: before,
      requestedBytes: 50_000,
      quotaBytes: QUOTA,
    });
    expect(usage()).to.include({ referencedBytes: before, reservedBytes: 0 });
  });

  it('cuts off a chunked body without Content-Length at the quota', async () => {
    const token = await pushToken();
    const location = await startUpload(token);
    const status = await new Promise<number>((resolve) => {
      const request = http.request(`${registry.url}${location}`, {
        method: 'PATCH',
        headers: { Authorization: `Bearer ${token}`, 'Transfer-Encoding': 'chunked' },
      });
      request.on('response', (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      // The registry cuts the connection off, as it does at the upload size limit.
      request.on('error', () => resolve(-1));
      let sent = 0;
      const next = () => {
        if (sent >= 200_000 || request.destroyed) return request.end();
        request.write(randomBytes(10_000));
        sent += 10_000;
        setTimeout(next, 2);
      };
      next();
    });
    expect(status).to.be.oneOf([403, -1]);
    expect(usage().referencedBytes + usage().reservedBytes).to.be.at.most(QUOTA);
  });

  it('releases the reservation of a cancelled upload at once', async () => {
    const token = await pushToken();
    const location = await startUpload(token);
    expect((await patch(token, location, randomBytes(70_000))).status).to.equal(202);
    expect(usage().reservedBytes).to.equal(70_000);
    const blocked = await alice.pushBlob('home/alice/app', randomBytes(40_000));
    expect(blocked.status).to.equal(403);
    const cancel = await fetch(`${registry.url}${location}`, {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(cancel.status).to.equal(204);
    expect(usage().reservedBytes).to.equal(0);
    expect((await alice.pushBlob('home/alice/app', randomBytes(40_000))).status).to.equal(201);
  });

  it('releases the reservation of an upload that expires (upload timeout), without gc', async () => {
    const token = await pushToken();
    const location = await startUpload(token);
    expect((await patch(token, location, randomBytes(70_000))).status).to.equal(202);
    expect((await alice.pushBlob('home/alice/app', randomBytes(40_000))).status).to.equal(403);
    clock += 61_000;
    expect((await alice.pushBlob('home/alice/app', randomBytes(40_000))).status).to.equal(201);
  });

  it('is exact right after a failed push (digest mismatch, refused manifest)', async () => {
    expect((await alice.pushImage('home/alice/app', '1', randomBytes(10_000))).status).to.equal(201);
    const before = usage();
    const data = randomBytes(20_000);
    const wrong = await alice.send(
      `/v2/home/alice/app/blobs/uploads/?digest=${sha256('other')}`,
      'repository:home/alice/app:push',
      {
        method: 'POST',
        body: data,
      },
    );
    expect(wrong.status).to.equal(400);
    expect(usage()).to.deep.equal(before);
    const orphan = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256('missing'), size: 7 },
        layers: [],
      }),
    );
    const refused = await alice.send('/v2/home/alice/app/manifests/2', 'repository:home/alice/app:push', {
      method: 'PUT',
      headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
      body: orphan,
    });
    expect(refused.status).to.equal(400);
    expect(usage()).to.deep.equal(before);
  });

  it('counts a finished upload until a manifest references it, then once', async () => {
    const layer = randomBytes(30_000);
    const pushed = await alice.pushBlob('home/alice/app', layer);
    expect(pushed.status).to.equal(201);
    expect(usage()).to.include({ referencedBytes: 0, reservedBytes: 30_000 });
    expect((await alice.pushImage('home/alice/app', '1', layer)).status).to.equal(201);
    expect(usage().reservedBytes).to.equal(0);
    expect(usage().referencedBytes).to.be.within(30_000, 31_000);
  });

  it('recounts after a manifest is deleted', async () => {
    const image = await alice.pushImage('home/alice/app', '1', randomBytes(30_000));
    expect(usage().referencedBytes).to.be.above(30_000);
    const deleted = await alice.send(
      `/v2/home/alice/app/manifests/${image.digest}`,
      'repository:home/alice/app:delete',
      {
        method: 'DELETE',
      },
    );
    expect(deleted.status).to.equal(202);
    expect(usage().referencedBytes).to.equal(0);
  });

  it('never overshoots with 16 concurrent pushes into one namespace', async () => {
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, index) =>
        alice.pushImage(`home/alice/app${index % 4}`, `t${index}`, randomBytes(15_000)),
      ),
    );
    const pushed = results.filter((result) => result.status === 201).length;
    const refused = results.filter((result) => result.status === 403).length;
    expect(pushed + refused).to.equal(16);
    expect(pushed).to.be.within(5, 6);
    const { referencedBytes, reservedBytes } = usage();
    expect(referencedBytes + reservedBytes).to.be.at.most(QUOTA);
    expect(referencedBytes).to.be.at.least(pushed * 15_000);
  });

  it('reports usage and quota on /metrics', async () => {
    expect((await alice.pushImage('home/alice/app', '1', randomBytes(10_000))).status).to.equal(201);
    const text = await (await fetch(`${registry.url}/metrics`)).text();
    expect(text).to.include(
      `registry_namespace_used_bytes{namespace="${NAMESPACE}"} ${usage().referencedBytes}`,
    );
    expect(text).to.include(`registry_namespace_quota_bytes{namespace="${NAMESPACE}"} ${QUOTA}`);
    expect(text).to.match(/registry_tokens_issued_total\{result="issued"\} \d+/);
  });
});
