import fs from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { expect } from 'chai';
import { parseDigest } from '../../../src/oci/domain/names.js';
import { PROXY_DEFAULTS, resolveUpstreams } from '../../../src/oci/proxy/config.js';
import { revisionLinkPath, tagPath } from '../../../src/oci/storage/layout.js';
import { startFaultProxy, type FaultProxy } from '../../helpers/fault-proxy.js';
import { startDistribution, startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { tempDir } from '../../helpers/temp-dirs.js';
import { OciLayoutWriter, readLayoutRef, type LayoutDescriptor } from '../../helpers/registry-oci-layout.js';
import { skopeo, skopeoError } from '../../helpers/skopeo.js';

const TIMEOUT_MS = 500;
/** DESIGN: cached tags are served within upstream_timeout_ms + 100 ms whatever the upstream does. */
const BUDGET_MS = TIMEOUT_MS + 100;

async function timed(
  url: string,
): Promise<{ ms: number; status: number; warning: string | null; body: string }> {
  const started = performance.now();
  const response = await fetch(url, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const body = await response.text();
  return {
    ms: performance.now() - started,
    status: response.status,
    warning: response.headers.get('warning'),
    body,
  };
}

describe('registry: pull-through cache when the upstream fails (429, slow, 401, killed, circuit breaker)', function () {
  this.timeout(120_000);
  let distribution: Awaited<ReturnType<typeof startDistribution>>;
  let hubProxy: FaultProxy;
  let privateA: TestRegistry;
  let privateB: TestRegistry;
  let privateProxy: FaultProxy;
  let tokenProxy: FaultProxy;
  let work: string;
  let root: string;
  let configFile: string;
  let mirror: TestRegistry;
  let layout: OciLayoutWriter;
  let image: LayoutDescriptor;

  /** A new mirror process state (fresh circuit breaker) over the same cache. */
  const restartMirror = async (now?: () => number) => {
    await mirror?.close();
    mirror = await startTestRegistry({
      root,
      upstreams: resolveUpstreams([], configFile, PROXY_DEFAULTS),
      ...(now === undefined ? {} : { now }),
    });
    // One request first, so the timed ones measure the upstream's effect, not a cold start.
    await (await fetch(`${mirror.url}/v2/`)).arrayBuffer();
  };
  const cachedTag = () => timed(`${mirror.url}/v2/hub/library/app/manifests/1.0`);
  const uncachedTag = () => timed(`${mirror.url}/v2/hub/library/other/manifests/1`);

  /** Resolves once the mirror wrote `tag` (the last of a fetched manifest's files) and let go of its lookup. */
  const tagWritten = async (name: string, tag: string) => {
    const file = path.join(root, tagPath(name, tag));
    const deadline = Date.now() + 5000;
    while ((await fs.stat(file).catch(() => undefined)) === undefined && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    // The lookup's entry goes in the turn after the tag file is renamed into place.
    await new Promise((resolve) => setTimeout(resolve, 50));
  };

  /** Pulls `reference` through the mirror with skopeo into a fresh OCI layout; the digest it got. */
  const pullThrough = async (layout: string, reference: string) => {
    const back = path.join(work, layout);
    await skopeo('copy', '--src-tls-verify=false', `docker://${mirror.host}/${reference}`, `oci:${back}:x`);
    return (await readLayoutRef(back, 'x'))?.digest;
  };

  before(async () => {
    work = await tempDir('proxy-faults-');
    root = path.join(work, 'mirror');
    layout = new OciLayoutWriter(path.join(work, 'source'));
    image = layout.image(2, 'amd64');
    await layout.write({ app: image });
    distribution = await startDistribution();
    for (const name of ['library/app:1.0', 'library/other:1']) {
      await skopeo(
        'copy',
        '--dest-tls-verify=false',
        `oci:${layout.dir}:app`,
        `docker://${distribution.host}/${name}`,
      );
    }
    hubProxy = await startFaultProxy(distribution.url);

    // The private upstream: our registry with Basic auth; B is the same storage with a changed password.
    const storage = path.join(work, 'private');
    const htpasswd = async (name: string, password: string) => {
      const file = path.join(work, name);
      await fs.writeFile(file, `bot:${bcrypt.hashSync(password, 4)}\n`);
      return file;
    };
    privateA = await startTestRegistry({ root: storage, htpasswd: await htpasswd('a.htpasswd', 'first') });
    privateB = await startTestRegistry({ root: storage, htpasswd: await htpasswd('b.htpasswd', 'second') });
    for (const name of ['team/app:1', 'team/app:2']) {
      await skopeo(
        'copy',
        '--dest-tls-verify=false',
        '--dest-creds',
        'bot:first',
        `oci:${layout.dir}:app`,
        `docker://${privateA.host}/${name}`,
      );
    }
    privateProxy = await startFaultProxy(privateA.url);
    tokenProxy = await startFaultProxy(distribution.url);
    tokenProxy.mode = { bearer: { username: 'bot', password: 'first' } };

    configFile = path.join(work, 'proxy.yaml');
    await fs.writeFile(
      configFile,
      [
        'proxies:',
        '  hub/:',
        `    url: ${hubProxy.url}`,
        `    upstream_timeout_ms: ${TIMEOUT_MS}`,
        '    max_stale_seconds: 3600',
        '  priv/:',
        `    url: ${privateProxy.url}`,
        '    username: bot',
        '    password: first',
        `    upstream_timeout_ms: ${TIMEOUT_MS}`,
        '  tok/:',
        `    url: ${tokenProxy.url}`,
        '    username: bot',
        '    password: first',
        `    upstream_timeout_ms: ${TIMEOUT_MS}`,
        '',
      ].join('\n'),
    );
    await restartMirror();
    // Warm the cache: one full pull of each image through the mirror.
    for (const name of ['hub/library/app:1.0', 'priv/team/app:1']) {
      await skopeo(
        'copy',
        '--src-tls-verify=false',
        `docker://${mirror.host}/${name}`,
        `oci:${path.join(work, 'warm')}:x`,
      );
    }
  });
  after(async () => {
    await mirror?.close();
    await hubProxy?.close();
    await privateProxy?.close();
    await tokenProxy?.close();
    await privateA?.close();
    await privateB?.close();
    await distribution?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('a manifest fetched upstream is one upstream GET however it is pulled while its files are written, and it ends up stored', async () => {
    await skopeo(
      'copy',
      '--dest-tls-verify=false',
      `oci:${layout.dir}:app`,
      `docker://${distribution.host}/library/fresh:1`,
    );
    const upstreamGets = () =>
      hubProxy.count('GET', '/v2/library/fresh/manifests/1') +
      hubProxy.count('GET', `/v2/library/fresh/manifests/${image.digest}`);
    const accept = { Accept: 'application/vnd.oci.image.manifest.v1+json' };
    const first = await fetch(`${mirror.url}/v2/hub/library/fresh/manifests/1`, { headers: accept });
    expect(first.status).to.equal(200);
    expect(first.headers.get('docker-content-digest')).to.equal(image.digest);
    // At once, while its files may still be being written (fsyncs): by digest and by tag again
    // (whether the by-digest pull finds it in memory or on disk depends on the disk's speed).
    const [byDigest, byTag] = await Promise.all([
      fetch(`${mirror.url}/v2/hub/library/fresh/manifests/${image.digest}`, { headers: accept }),
      fetch(`${mirror.url}/v2/hub/library/fresh/manifests/1`, { headers: accept }),
    ]);
    const content = Buffer.from(await first.arrayBuffer());
    expect(byDigest.status).to.equal(200);
    expect(Buffer.from(await byDigest.arrayBuffer()).equals(content)).to.equal(true);
    expect(byTag.status).to.equal(200);
    expect(Buffer.from(await byTag.arrayBuffer()).equals(content)).to.equal(true);
    expect(upstreamGets()).to.equal(1);
    // The files come after the answer: the tag is the last of them.
    const tagFile = path.join(root, tagPath('hub/library/fresh', '1'));
    const deadline = Date.now() + 5000;
    while ((await fs.stat(tagFile).catch(() => undefined)) === undefined && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await fs.readFile(tagFile, 'utf8')).trim()).to.equal(image.digest);
    const revision = path.join(root, revisionLinkPath('hub/library/fresh', parseDigest(image.digest)));
    expect((await fs.stat(revision)).isFile()).to.equal(true);
  });

  it('serves cached content by digest without asking the upstream', async () => {
    const before = hubProxy.counts.size === 0 ? 0 : [...hubProxy.counts.values()].reduce((a, b) => a + b, 0);
    const manifest = await fetch(`${mirror.url}/v2/hub/library/app/manifests/${image.digest}`);
    expect(manifest.status).to.equal(200);
    const blob = await fetch(`${mirror.url}/v2/hub/library/app/blobs/${image.digest}`);
    expect(blob.status).to.equal(200);
    expect([...hubProxy.counts.values()].reduce((a, b) => a + b, 0)).to.equal(before);
  });

  it('upstream answering 429: the cached tag is served stale with a Warning within the budget; uncached is 429', async () => {
    await restartMirror();
    hubProxy.mode = { status: 429 };
    const cached = await cachedTag();
    expect(cached.status).to.equal(200);
    expect(cached.warning).to.match(/^110 - "Response is Stale \(upstream 127\.0\.0\.1:\d+: rate limited/);
    expect(cached.ms).to.be.lessThan(BUDGET_MS);
    const uncached = await uncachedTag();
    expect(uncached.status).to.equal(429);
    expect(uncached.body).to.match(/TOOMANYREQUESTS.*rate limited/);
    expect(uncached.ms).to.be.lessThan(BUDGET_MS);
    // A whole pull through the mirror still works: manifest stale, blobs local.
    expect(await pullThrough('back-429', 'hub/library/app:1.0')).to.equal(image.digest);
  });

  it('upstream answering after 10 s: cached tag within upstream_timeout_ms + 100 ms; uncached 504 as fast', async () => {
    await restartMirror();
    hubProxy.mode = { delayMs: 10_000 };
    const cached = await cachedTag();
    expect(cached.status).to.equal(200);
    expect(cached.warning).to.match(/no answer within the upstream timeout/);
    expect(cached.ms).to.be.lessThan(BUDGET_MS);
    const uncached = await uncachedTag();
    expect(uncached.status).to.equal(504);
    expect(uncached.body).to.match(/did not answer|no answer within/);
    expect(uncached.ms).to.be.lessThan(BUDGET_MS);
  });

  it('a manifest body that stalls half-way: the uncached tag is a 504 at 5 x upstream_timeout_ms, not a hang', async () => {
    await restartMirror();
    hubProxy.mode = { stallAfterBytes: 100 };
    const pending = uncachedTag();
    // Meanwhile the mirror answers others at once.
    const cached = await timed(`${mirror.url}/v2/`);
    expect(cached.status).to.equal(200);
    const uncached = await pending;
    expect(uncached.status).to.equal(504);
    expect(uncached.body).to.match(/manifest body stalled/);
    expect(uncached.ms).to.be.within(5 * TIMEOUT_MS - 100, 5 * TIMEOUT_MS + 1000);
    hubProxy.mode = {};
  });

  it('circuit breaker: after repeated failures the upstream is not asked and answers come at once', async () => {
    await restartMirror();
    hubProxy.mode = { status: 503 };
    const heads = () => hubProxy.count('HEAD', '/manifests/1.0');
    const start = heads();
    for (let i = 0; i < 3; i += 1) expect((await cachedTag()).status).to.equal(200);
    expect(heads() - start).to.equal(3);
    for (let i = 0; i < 5; i += 1) {
      const answer = await cachedTag();
      expect(answer.status).to.equal(200);
      expect(answer.warning).to.match(/circuit open/);
      expect(answer.ms).to.be.lessThan(200); // no upstream round trip: well below the 500 ms timeout
    }
    expect(heads() - start).to.equal(3);
    const uncached = await uncachedTag();
    expect(uncached.status).to.equal(502);
    expect(uncached.body).to.match(/circuit open/);
    hubProxy.mode = {};
  });

  it('upstream refusing the mirror credentials (401 after a password change): stale cached tag, clear error otherwise', async () => {
    await restartMirror();
    privateProxy.target = privateB.url;
    const cached = await timed(`${mirror.url}/v2/priv/team/app/manifests/1`);
    expect(cached.status).to.equal(200);
    expect(cached.warning).to.match(/refused the credentials \(401\)/);
    expect(cached.ms).to.be.lessThan(BUDGET_MS);
    const uncached = await timed(`${mirror.url}/v2/priv/team/app/manifests/2`);
    expect(uncached.status).to.equal(502);
    expect(uncached.body).to.match(/DENIED.*refused the credentials/);
    privateProxy.target = privateA.url;
  });

  it('Docker token flow: one Bearer token fetched with the configured credentials; a password change is a 401', async () => {
    await restartMirror();
    expect(await pullThrough('back-token', 'tok/library/app:1.0')).to.equal(image.digest);
    expect(tokenProxy.count('GET', '/token')).to.equal(1);
    // Until its files are written, the tag is answered from the fetch that got it (no upstream
    // HEAD to refuse): the password changes once it is on disk.
    await tagWritten('tok/library/app', '1.0');
    tokenProxy.mode = { bearer: { username: 'bot', password: 'second' } };
    const cached = await timed(`${mirror.url}/v2/tok/library/app/manifests/1.0`);
    expect(cached.status).to.equal(200);
    expect(cached.warning).to.match(/refused the credentials \(401\)/);
    const uncached = await timed(`${mirror.url}/v2/tok/library/other/manifests/1`);
    expect(uncached.status).to.equal(502);
    expect(uncached.body).to.match(/DENIED/);
  });

  it('a stale copy older than max_stale_seconds is not served', async () => {
    await restartMirror(() => Date.now() + 2 * 3600 * 1000);
    hubProxy.mode = { status: 503 };
    const cached = await cachedTag();
    expect(cached.status).to.equal(502);
    expect(cached.body).to.match(/answered 503/);
    hubProxy.mode = {};
  });

  it('upstream killed: skopeo pulls the cached image through the mirror; an uncached one fails fast and says why', async () => {
    await distribution.stop();
    await restartMirror();
    const started = performance.now();
    expect(await pullThrough('back-down', 'hub/library/app:1.0')).to.equal(image.digest);
    expect(performance.now() - started).to.be.lessThan(5000);
    const cached = await cachedTag();
    expect(cached.warning).to.match(/connection failed/);
    expect(cached.ms).to.be.lessThan(BUDGET_MS);
    const error = await skopeoError(
      'inspect',
      '--tls-verify=false',
      '--retry-times',
      '0',
      `docker://${mirror.host}/hub/library/other:1`,
    );
    // skopeo shows only the status of a 5xx; the body says why, for curl and logs.
    expect(error).to.match(/502 Bad Gateway/);
    const uncached = await uncachedTag();
    expect(uncached.status).to.equal(502);
    expect(uncached.body).to.match(/upstream 127\.0\.0\.1:\d+: .*connection failed/);
    expect(uncached.ms).to.be.lessThan(BUDGET_MS);
    // By digest and for blobs too: a gateway error naming the upstream, never a 500.
    const unknownDigest = `sha256:${'0'.repeat(64)}`;
    for (const url of [
      `${mirror.url}/v2/hub/library/other/manifests/${unknownDigest}`,
      `${mirror.url}/v2/hub/library/other/blobs/${unknownDigest}`,
    ]) {
      for (const method of ['GET', 'HEAD']) {
        const response = await fetch(url, { method });
        expect(response.status, `${method} ${url}`).to.equal(502);
        if (method === 'GET') expect(await response.text()).to.match(/upstream 127\.0\.0\.1:\d+: /);
      }
    }
    const metrics = await (await fetch(`${mirror.url}/metrics`)).text();
    expect(metrics).to.match(
      /registry_proxy_requests_total\{upstream="127\.0\.0\.1:\d+",kind="manifest",result="stale"\} [1-9]/,
    );
    expect(metrics).to.match(
      /registry_proxy_upstream_errors_total\{upstream="127\.0\.0\.1:\d+",reason="connection"\} [1-9]/,
    );
  });
});
