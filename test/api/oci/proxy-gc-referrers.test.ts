import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { runGc } from '../../../src/oci/main.js';
import { FsDriver } from '../../../src/oci/storage/fs-driver.js';
import { PROXY_DEFAULTS, resolveUpstreams } from '../../../src/oci/proxy/config.js';
import { startFaultProxy, type FaultProxy } from '../../helpers/fault-proxy.js';
import {
  imageManifest,
  pushBlob,
  sha256,
  startTestRegistry,
  type TestRegistry,
} from '../../helpers/registry.js';
import { tempDir } from '../../helpers/temp-dirs.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

async function pushManifest(url: string, name: string, reference: string, body: Buffer): Promise<string> {
  const response = await fetch(`${url}/v2/${name}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'Content-Type': OCI_MANIFEST },
    body,
  });
  if (response.status !== 201) throw new Error(`manifest push answered ${response.status}`);
  return sha256(body);
}

async function pushImage(
  url: string,
  name: string,
  tag: string,
  extra: Record<string, unknown> = {},
  layerBytes = 4096,
) {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', tag }));
  const layer = randomBytes(layerBytes);
  for (const blob of [config, layer]) await pushBlob(url, name, blob);
  const manifest = imageManifest(config, [layer], extra);
  return {
    digest: await pushManifest(url, name, tag, manifest),
    layer: sha256(layer),
    size: manifest.length,
  };
}

/** GETs a whole blob (the fetch completes with the body) and returns its digest. */
async function pullBlob(url: string): Promise<string> {
  const response = await fetch(url);
  if (response.status !== 200) throw new Error(`blob GET answered ${response.status}`);
  return sha256(Buffer.from(await response.arrayBuffer()));
}

describe('registry: pull-through cache referrers and gc eviction by TTL', function () {
  this.timeout(30_000);
  let upstream: TestRegistry;
  let proxy: FaultProxy;
  let mirror: TestRegistry;
  let root: string;

  before(async () => {
    upstream = await startTestRegistry();
    proxy = await startFaultProxy(upstream.url);
    root = await tempDir('proxy-gc-');
    mirror = await startTestRegistry({
      root,
      upstreams: resolveUpstreams([{ prefix: 'hub/', url: proxy.url }], undefined, {
        ...PROXY_DEFAULTS,
        upstreamTimeoutMs: 500,
      }),
    });
  });
  after(async () => {
    await mirror?.close();
    await proxy?.close();
    await upstream?.close();
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  it('proxies the referrers of an image, caches them, and serves the cached answer while the upstream fails', async () => {
    const subject = await pushImage(upstream.url, 'team/signed', 'v1');
    const signature = await pushImage(upstream.url, 'team/signed', 'sig', {
      artifactType: 'application/vnd.example.signature',
      subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.size },
    });
    const url = `${mirror.url}/v2/hub/team/signed/referrers/${subject.digest}`;
    const live = (await (await fetch(url)).json()) as { manifests: { digest: string }[] };
    expect(live.manifests.map((m) => m.digest)).to.deep.equal([signature.digest]);
    // The referrer itself is pulled by digest through the cache.
    const referrer = await fetch(`${mirror.url}/v2/hub/team/signed/manifests/${signature.digest}`);
    expect(referrer.status).to.equal(200);

    proxy.mode = { status: 503 };
    try {
      const cached = (await (await fetch(url)).json()) as { manifests: { digest: string }[] };
      expect(cached.manifests.map((m) => m.digest)).to.deep.equal([signature.digest]);
      const filtered = (await (await fetch(`${url}?artifactType=other`)).json()) as { manifests: unknown[] };
      expect(filtered.manifests).to.deep.equal([]);
    } finally {
      proxy.mode = {};
    }
  });

  it('refuses an upstream blob above the registry blob size limit with 413, storing nothing', async () => {
    const big = randomBytes(2 * 1024 * 1024);
    const digest = await pushBlob(upstream.url, 'team/huge', big);
    const limited = await startTestRegistry({
      maxUploadBytes: 1024 * 1024,
      upstreams: resolveUpstreams([{ prefix: 'hub/', url: proxy.url }], undefined, PROXY_DEFAULTS),
    });
    try {
      const response = await fetch(`${limited.url}/v2/hub/team/huge/blobs/${digest}`);
      expect(response.status).to.equal(413);
      expect(((await response.json()) as { errors: { code: string }[] }).errors[0]?.code).to.equal(
        'SIZE_INVALID',
      );
      const stored = path.join(limited.root, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
      await fs.access(stored).then(
        () => expect.fail('blob stored'),
        () => undefined,
      );
    } finally {
      await limited.close();
    }
  });

  it('gc removes cached content not pulled within its TTL and keeps what was pulled since', async () => {
    const old = await pushImage(upstream.url, 'team/old', '1');
    const fresh = await pushImage(upstream.url, 'team/fresh', '1');
    for (const image of [
      { name: 'team/old', ...old },
      { name: 'team/fresh', ...fresh },
    ]) {
      expect((await fetch(`${mirror.url}/v2/hub/${image.name}/manifests/1`)).status).to.equal(200);
      expect(await pullBlob(`${mirror.url}/v2/hub/${image.name}/blobs/${image.layer}`)).to.equal(image.layer);
    }
    // Age everything of team/old by two hours: its last pull is older than a one-hour TTL (once
    // the mirror's writes after its answers have landed: they are among what is aged).
    await mirror.app.proxy!.settled();
    const aged = new Date(Date.now() - 2 * 3600 * 1000);
    const repository = path.join(root, 'repositories', 'hub', 'team', 'old');
    for (const entry of await fs.readdir(repository, { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) await fs.utimes(path.join(entry.parentPath, entry.name), aged, aged);
    }
    const layerFile = path.join(root, 'blobs', 'sha256', old.layer.slice(7, 9), old.layer.slice(7));
    await fs.utimes(layerFile, aged, aged);

    const lines: string[] = [];
    await runGc(
      {
        REGISTRY_STORAGE_ROOT: root,
        REGISTRY_PROXY: `hub/=${proxy.url}`,
        REGISTRY_PROXY_TTL_SECONDS: '3600',
        REGISTRY_GC_GRACE_PERIOD_SECONDS: '60',
      },
      { dryRun: false },
      (line) => lines.push(line),
    );
    expect(lines).to.include(`removed cached tag hub/team/old:1 (TTL)`);
    expect(lines.some((line) => line.startsWith(`removed blob ${old.layer}`))).to.equal(true);
    await fs.access(layerFile).then(
      () => expect.fail('evicted blob still stored'),
      () => undefined,
    );
    const tags = (await (await fetch(`${mirror.url}/v2/hub/team/fresh/tags/list`)).json()) as {
      tags: string[];
    };
    expect(tags.tags).to.deep.equal(['1']);
    const before = proxy.count('GET', `/blobs/${fresh.layer}`);
    expect(await pullBlob(`${mirror.url}/v2/hub/team/fresh/blobs/${fresh.layer}`)).to.equal(fresh.layer);
    expect(proxy.count('GET', `/blobs/${fresh.layer}`)).to.equal(before); // still cached

    // Evicted content is fetched again on the next pull.
    const again = await fetch(`${mirror.url}/v2/hub/team/old/blobs/${old.layer}`);
    expect(again.status).to.equal(200);
    expect(sha256(Buffer.from(await again.arrayBuffer()))).to.equal(old.layer);
  });

  it('gc with a size cap removes the least recently pulled cached images first', async () => {
    const a = await pushImage(upstream.url, 'team/lru-a', '1', {}, 600 * 1024);
    const b = await pushImage(upstream.url, 'team/lru-b', '1', {}, 600 * 1024);
    for (const [name, image] of [
      ['team/lru-a', a],
      ['team/lru-b', b],
    ] as const) {
      expect((await fetch(`${mirror.url}/v2/hub/${name}/manifests/1`)).status).to.equal(200);
      expect(await pullBlob(`${mirror.url}/v2/hub/${name}/blobs/${image.layer}`)).to.equal(image.layer);
    }
    // a was pulled an hour ago (well within the 7-day TTL), b just now; once the mirror's writes
    // after its answers (last-pull times among them) have landed, or one would undo this.
    await mirror.app.proxy!.settled();
    const hourAgo = new Date(Date.now() - 3600 * 1000);
    const revision = path.join(
      root,
      'repositories/hub/team/lru-a/_manifests/revisions/sha256',
      a.digest.slice(7),
    );
    await fs.utimes(revision, hourAgo, hourAgo);
    const lines: string[] = [];
    await runGc(
      {
        REGISTRY_STORAGE_ROOT: root,
        REGISTRY_PROXY: `hub/=${proxy.url}`,
        REGISTRY_PROXY_MAX_BYTES: String(1024 * 1024),
        REGISTRY_GC_GRACE_PERIOD_SECONDS: '0',
      },
      { dryRun: false },
      (line) => lines.push(line),
    );
    expect(lines).to.include('removed cached tag hub/team/lru-a:1 (size cap)');
    expect(lines.filter((line) => line.includes('(size cap)') && line.includes('lru-b'))).to.deep.equal([]);
    const blobFile = (digest: string) =>
      path.join(root, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
    await fs.access(blobFile(a.layer)).then(
      () => expect.fail('least recently pulled layer still stored'),
      () => undefined,
    );
    await fs.access(blobFile(b.layer));
    const tags = (await (await fetch(`${mirror.url}/v2/hub/team/lru-b/tags/list`)).json()) as {
      tags: string[];
    };
    expect(tags.tags).to.deep.equal(['1']);
  });

  it('removes temp files of fetches a killed process left behind, and only those', async () => {
    const tmp = path.join(root, '_tmp');
    await fs.mkdir(tmp, { recursive: true });
    const old = new Date(Date.now() - 3600 * 1000);
    for (const name of ['proxy-abandoned', 'proxy-live']) await fs.writeFile(path.join(tmp, name), 'x');
    await fs.utimes(path.join(tmp, 'proxy-abandoned'), old, old);
    await mirror.app.purgeStaleUploads();
    const left = await fs.readdir(tmp);
    expect(left).to.include('proxy-live');
    expect(left).not.to.include('proxy-abandoned');
    await fs.rm(path.join(tmp, 'proxy-live'));
  });
});

describe('registry: pull-through cache writes after the answer', function () {
  this.timeout(30_000);

  it('settled() waits for the files of a manifest answered before they were written (what SIGTERM waits for)', async () => {
    // Storage whose writes take 300 ms each: the mirror answers first, then writes the
    // manifest's bytes, revision link and tag in turn (pull-through-cache.ts).
    class SlowWrites extends FsDriver {
      override async writeFile(...args: Parameters<FsDriver['writeFile']>): Promise<void> {
        await new Promise((resolve) => setTimeout(resolve, 300));
        return super.writeFile(...args);
      }
    }
    const upstream = await startTestRegistry();
    const root = await tempDir('proxy-settled-');
    const mirror = await startTestRegistry({
      root,
      driver: new SlowWrites(root),
      upstreams: resolveUpstreams([{ prefix: 'hub/', url: upstream.url }], undefined, PROXY_DEFAULTS),
    });
    try {
      const image = await pushImage(upstream.url, 'team/late', '1');
      const answered = await fetch(`${mirror.url}/v2/hub/team/late/manifests/1`);
      expect(answered.status).to.equal(200);
      expect(answered.headers.get('docker-content-digest')).to.equal(image.digest);
      const tagFile = path.join(root, 'repositories/hub/team/late/_manifests/tags/1');
      const started = performance.now();
      await mirror.app.proxy!.settled();
      expect(performance.now() - started, 'settled waited for the writes').to.be.greaterThan(250);
      expect((await fs.readFile(tagFile, 'utf8')).trim()).to.equal(image.digest);
    } finally {
      await mirror.close();
      await upstream.close();
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});
