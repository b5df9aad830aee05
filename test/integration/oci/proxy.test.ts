import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { PROXY_DEFAULTS, resolveUpstreams } from '../../../src/oci/proxy/config.js';
import { sha256, startDistribution, startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { tempDir } from '../../helpers/temp-dirs.js';
import {
  OciLayoutWriter,
  readLayoutBlob,
  readLayoutRef,
  type LayoutDescriptor,
} from '../../helpers/registry-oci-layout.js';
import { skopeo } from '../../helpers/skopeo.js';

const push = (source: string, ref: string, target: string, ...flags: string[]) =>
  skopeo('copy', ...flags, '--dest-tls-verify=false', `oci:${source}:${ref}`, `docker://${target}`);
const pull = (target: string, dir: string, ref: string, ...flags: string[]) =>
  skopeo('copy', ...flags, '--src-tls-verify=false', `docker://${target}`, `oci:${dir}:${ref}`);

async function raw(url: string): Promise<{ status: number; body: Buffer; headers: Headers }> {
  const response = await fetch(url, {
    headers: {
      Accept: [
        'application/vnd.oci.image.index.v1+json',
        'application/vnd.oci.image.manifest.v1+json',
        'application/vnd.docker.distribution.manifest.v2+json',
        'application/vnd.docker.distribution.manifest.list.v2+json',
      ].join(', '),
    },
  });
  return {
    status: response.status,
    body: Buffer.from(await response.arrayBuffer()),
    headers: response.headers,
  };
}

describe('registry: pull-through cache of two upstreams (Distribution and our own), pulled with skopeo', function () {
  this.timeout(120_000);
  let distribution: Awaited<ReturnType<typeof startDistribution>>;
  let ours: TestRegistry;
  let mirror: TestRegistry;
  let work: string;
  let layout: OciLayoutWriter;
  let image: LayoutDescriptor;
  let multi: LayoutDescriptor;
  let arm64: LayoutDescriptor;

  before(async () => {
    distribution = await startDistribution();
    ours = await startTestRegistry();
    work = await tempDir('proxy-test-');
    layout = new OciLayoutWriter(path.join(work, 'source'));
    image = layout.image(3, 'amd64');
    arm64 = layout.image(2, 'arm64');
    multi = layout.index([layout.image(2, 'amd64'), arm64]);
    await layout.write({ app: image, multi });
    const source = layout.dir;
    await push(source, 'app', `${distribution.host}/library/app:1.0`);
    await push(source, 'multi', `${distribution.host}/library/multi:1`, '--all');
    await push(source, 'app', `${distribution.host}/library/docker:1`, '--format', 'v2s2');
    await push(source, 'app', `${ours.host}/team/app:2`);
    mirror = await startTestRegistry({
      upstreams: resolveUpstreams(
        [
          { prefix: 'hub/', url: distribution.url },
          { prefix: 'ours/', url: ours.url },
        ],
        undefined,
        PROXY_DEFAULTS,
      ),
    });
  });
  after(async () => {
    await mirror?.close();
    await ours?.close();
    await distribution?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('pulls an image through the mirror: manifest and every blob identical to the upstream, byte for byte', async () => {
    const back = path.join(work, 'back-app');
    await pull(`${mirror.host}/hub/library/app:1.0`, back, 'app');
    expect((await readLayoutRef(back, 'app'))?.digest).to.equal(image.digest);
    const manifest = JSON.parse((await readLayoutBlob(back, image.digest)).toString()) as {
      config: LayoutDescriptor;
      layers: LayoutDescriptor[];
    };
    for (const blob of [manifest.config, ...manifest.layers]) {
      expect(await readLayoutBlob(back, blob.digest)).to.deep.equal(layout.blobs.get(blob.digest));
    }
    const upstream = await raw(`${distribution.url}/v2/library/app/manifests/1.0`);
    const cached = await raw(`${mirror.url}/v2/hub/library/app/manifests/1.0`);
    expect(cached.status).to.equal(200);
    expect(cached.body).to.deep.equal(upstream.body);
    expect(cached.headers.get('docker-content-digest')).to.equal(
      upstream.headers.get('docker-content-digest'),
    );
    expect(cached.headers.get('content-type')).to.equal(upstream.headers.get('content-type'));
  });

  it('pulls a multi-arch index with --all, and one platform of it, with the upstream digests', async () => {
    const all = path.join(work, 'back-multi');
    await pull(`${mirror.host}/hub/library/multi:1`, all, 'multi', '--all');
    expect((await readLayoutRef(all, 'multi'))?.digest).to.equal(multi.digest);
    expect(await readLayoutBlob(all, multi.digest)).to.deep.equal(layout.blobs.get(multi.digest));

    const one = path.join(work, 'back-arm64');
    await pull(`${mirror.host}/hub/library/multi:1`, one, 'arm', '--override-arch', 'arm64');
    expect((await readLayoutRef(one, 'arm'))?.digest).to.equal(arm64.digest);
    expect(await readLayoutBlob(one, arm64.digest)).to.deep.equal(layout.blobs.get(arm64.digest));
  });

  it('keeps a Docker schema2 manifest as Docker schema2: same bytes, same digest, nothing converted', async () => {
    const upstream = await raw(`${distribution.url}/v2/library/docker/manifests/1`);
    const cached = await raw(`${mirror.url}/v2/hub/library/docker/manifests/1`);
    expect(cached.headers.get('content-type')).to.equal(
      'application/vnd.docker.distribution.manifest.v2+json',
    );
    expect(cached.body).to.deep.equal(upstream.body);
    expect(cached.headers.get('docker-content-digest')).to.equal(sha256(upstream.body));
  });

  it('serves a second prefix from our own registry at the same time', async () => {
    const back = path.join(work, 'back-ours');
    await pull(`${mirror.host}/ours/team/app:2`, back, 'app');
    expect((await readLayoutRef(back, 'app'))?.digest).to.equal(image.digest);
  });

  it("routes containerd's ?ns=<host> to the upstream with that host, sharing the prefix's cache", async () => {
    const viaNs = await raw(
      `${mirror.url}/v2/library/app/manifests/1.0?ns=${encodeURIComponent(distribution.host)}`,
    );
    expect(viaNs.status).to.equal(200);
    expect(viaNs.headers.get('docker-content-digest')).to.equal(image.digest);
    const blob = await fetch(`${mirror.url}/v2/library/app/blobs/${image.digest}?ns=${distribution.host}`);
    expect(blob.status).to.equal(200);
    expect(Buffer.from(await blob.arrayBuffer())).to.deep.equal(layout.blobs.get(image.digest));
  });

  it('refuses pushes and deletes under a proxy prefix with 405 UNSUPPORTED', async () => {
    const attempts = [
      fetch(`${mirror.url}/v2/hub/library/app/blobs/uploads/`, { method: 'POST' }),
      fetch(`${mirror.url}/v2/hub/library/app/manifests/evil`, {
        method: 'PUT',
        headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
        body: layout.blobs.get(image.digest),
      }),
      fetch(`${mirror.url}/v2/hub/library/app/manifests/${image.digest}`, { method: 'DELETE' }),
      fetch(`${mirror.url}/v2/library/app/manifests/1.0?ns=${distribution.host}`, { method: 'DELETE' }),
    ];
    for (const response of await Promise.all(attempts)) {
      expect(response.status).to.equal(405);
      const body = (await response.json()) as { errors: { code: string; message: string }[] };
      expect(body.errors[0]?.code).to.equal('UNSUPPORTED');
      expect(body.errors[0]?.message).to.match(/pull-through cache/);
    }
    // Outside the prefixes the mirror is an ordinary registry.
    await push(layout.dir, 'app', `${mirror.host}/local/app:1`);
  });

  it('lists in _catalog and tags/list what is cached under the prefixes', async () => {
    const catalog = (await (await fetch(`${mirror.url}/v2/_catalog`)).json()) as { repositories: string[] };
    expect(catalog.repositories).to.include.members([
      'hub/library/app',
      'hub/library/multi',
      'hub/library/docker',
      'ours/team/app',
      'local/app',
    ]);
    const tags = (await (await fetch(`${mirror.url}/v2/hub/library/app/tags/list`)).json()) as {
      tags: string[];
    };
    expect(tags.tags).to.deep.equal(['1.0']);
    const unknown = await fetch(`${mirror.url}/v2/hub/library/never-pulled/tags/list`);
    expect(unknown.status).to.equal(404);
  });

  it('answers 404 MANIFEST_UNKNOWN for a tag the upstream does not have', async () => {
    const response = await fetch(`${mirror.url}/v2/hub/library/app/manifests/nope`);
    expect(response.status).to.equal(404);
    const body = (await response.json()) as { errors: { code: string }[] };
    expect(body.errors[0]?.code).to.equal('MANIFEST_UNKNOWN');
  });

  it('counts hits, misses and upstream bytes in /metrics', async () => {
    const text = await (await fetch(`${mirror.url}/metrics`)).text();
    expect(text).to.match(
      new RegExp(
        `registry_proxy_requests_total\\{upstream="${distribution.host}",kind="manifest",result="miss"\\} [1-9]`,
      ),
    );
    expect(text).to.match(
      new RegExp(
        `registry_proxy_requests_total\\{upstream="${distribution.host}",kind="blob",result="hit"\\} [1-9]`,
      ),
    );
    expect(text).to.match(
      new RegExp(`registry_proxy_upstream_bytes_total\\{upstream="${distribution.host}"\\} [1-9]`),
    );
  });
});
