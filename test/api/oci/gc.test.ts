import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { runGc } from '../../../src/oci/main.js';
import { pushBlob, pushImage, sha256, startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { spawnCli } from '../../helpers/spawn-cli.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

async function status(url: string, init?: RequestInit): Promise<number> {
  const response = await fetch(url, init);
  await response.arrayBuffer();
  return response.status;
}

describe('registry: gc (mark and sweep)', function () {
  this.timeout(30_000);
  let registry: TestRegistry;
  let url: string;
  const shared = randomBytes(1000);
  const onlyOld = randomBytes(2000);
  const orphan = randomBytes(3000);
  let kept: Awaited<ReturnType<typeof pushImage>>;
  let old: Awaited<ReturnType<typeof pushImage>>;
  let child: Awaited<ReturnType<typeof pushImage>>;
  let referrer: Awaited<ReturnType<typeof pushImage>>;
  let indexDigest: string;
  const lines: string[] = [];
  const env = () => ({ REGISTRY_STORAGE_ROOT: registry.root });

  before(async () => {
    registry = await startTestRegistry();
    url = registry.url;
    kept = await pushImage(url, 'gc/app', 'keep', [shared, randomBytes(500)]);
    old = await pushImage(url, 'gc/app', 'old', [shared, onlyOld]);
    // An index whose child is untagged: reachable through the index only.
    child = await pushImage(url, 'gc/app', 'child-temp', [randomBytes(700)]);
    await fetch(`${url}/v2/gc/app/manifests/child-temp`, { method: 'DELETE' });
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: child.digest,
            size: child.manifest.length,
          },
        ],
      }),
    );
    await fetch(`${url}/v2/gc/app/manifests/multi`, {
      method: 'PUT',
      headers: { 'Content-Type': OCI_INDEX },
      body: index,
    });
    indexDigest = sha256(index);
    // An untagged referrer (a signature, say) of the kept image: reachable through its subject.
    referrer = await pushImage(url, 'gc/app', 'sig-temp', [randomBytes(300)], {
      artifactType: 'application/example.signature',
      subject: {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: kept.digest,
        size: kept.manifest.length,
      },
    });
    await fetch(`${url}/v2/gc/app/manifests/sig-temp`, { method: 'DELETE' });
    // The tag goes away: the image becomes garbage, except the layer it shares.
    await fetch(`${url}/v2/gc/app/manifests/old`, { method: 'DELETE' });
    await pushBlob(url, 'gc/app', orphan);
  });
  after(async () => registry?.close());

  it('keeps everything younger than the grace period (pushes in flight)', async () => {
    const report = await runGc(env(), { dryRun: false, gracePeriodSeconds: 3600 }, (line) =>
      lines.push(line),
    );
    expect(report.manifestsRemoved).to.deep.equal([]);
    expect(report.blobsRemoved).to.deep.equal([]);
    expect(await status(`${url}/v2/gc/app/manifests/${old.digest}`)).to.equal(200);
  });

  it('--dry-run lists what would go and removes nothing', async () => {
    lines.length = 0;
    const report = await runGc(env(), { dryRun: true, gracePeriodSeconds: 0 }, (line) => lines.push(line));
    expect(report.manifestsRemoved.map((item) => item.digest)).to.deep.equal([old.digest]);
    // The config blob is the same JSON in every test image, so it stays (shared).
    expect(old.configDigest).to.equal(kept.configDigest);
    expect(report.blobsRemoved.map((item) => item.digest).sort()).to.deep.equal(
      [old.digest, sha256(onlyOld), sha256(orphan)].sort(),
    );
    expect(lines).to.include(`would remove manifest gc/app@${old.digest}`);
    expect(lines.at(-1)).to.match(/would remove 1 manifests, 2 blob links, 3 blobs, .* would be freed$/);
    expect(await status(`${url}/v2/gc/app/manifests/${old.digest}`)).to.equal(200);
    expect(await status(`${url}/v2/gc/app/blobs/${sha256(orphan)}`)).to.equal(200);
  });

  it('removes unreferenced manifests and blobs, keeps tags, index children, referrers and shared layers', async () => {
    lines.length = 0;
    const report = await runGc(env(), { dryRun: false, gracePeriodSeconds: 0 }, (line) => lines.push(line));
    expect(report.bytesFreed).to.be.greaterThan(onlyOld.length + orphan.length);
    expect(lines.at(-1)).to.match(/removed 1 manifests, 2 blob links, 3 blobs, .* freed$/);

    expect(await status(`${url}/v2/gc/app/manifests/${old.digest}`)).to.equal(404);
    expect(await status(`${url}/v2/gc/app/blobs/${sha256(onlyOld)}`)).to.equal(404);
    expect(await status(`${url}/v2/gc/app/blobs/${sha256(orphan)}`)).to.equal(404);

    expect(await status(`${url}/v2/gc/app/manifests/keep`)).to.equal(200);
    expect(await status(`${url}/v2/gc/app/blobs/${sha256(shared)}`)).to.equal(200);
    expect(await status(`${url}/v2/gc/app/manifests/multi`, { headers: { Accept: OCI_INDEX } })).to.equal(
      200,
    );
    expect(await status(`${url}/v2/gc/app/manifests/${child.digest}`)).to.equal(200);
    for (const digest of child.layerDigests)
      expect(await status(`${url}/v2/gc/app/blobs/${digest}`)).to.equal(200);
    const referrers = (await (await fetch(`${url}/v2/gc/app/referrers/${kept.digest}`)).json()) as {
      manifests: { digest: string }[];
    };
    expect(referrers.manifests.map((entry) => entry.digest)).to.deep.equal([referrer.digest]);
    expect(
      await status(`${url}/v2/gc/app/manifests/${indexDigest}`, { headers: { Accept: OCI_INDEX } }),
    ).to.equal(200);

    const again = await runGc(env(), { dryRun: false, gracePeriodSeconds: 0 }, () => undefined);
    expect(again.blobsRemoved).to.deep.equal([]);
  });

  it('is wired to `gc` on the command line with --dry-run and --grace-period', async () => {
    const cli = spawnCli(['gc', '--storage-root', registry.root, '--dry-run', '--grace-period', '0'], {});
    const exit = await cli.exited;
    expect(exit.code, cli.stderr()).to.equal(0);
    const output = cli.logs.map((line) => String(line.msg));
    expect(output[0]).to.equal(`gc: storage ${registry.root}, grace period 0s, dry run`);
    expect(output.at(-1)).to.match(/would remove 0 manifests, 0 blob links, 0 blobs, 0 B would be freed$/);
  });
});

describe('registry: gc grace period against concurrent pushes', function () {
  this.timeout(30_000);
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry();
  });
  after(async () => registry?.close());

  /** Ages every file under the storage root by two hours, as if pushed long ago. */
  async function ageEverything(): Promise<void> {
    const old = new Date(Date.now() - 2 * 3600 * 1000);
    const entries = await fs.readdir(registry.root, { recursive: true, withFileTypes: true });
    for (const entry of entries) {
      if (entry.isFile()) await fs.utimes(path.join(entry.parentPath, entry.name), old, old);
    }
  }

  it('keeps old blobs that a manifest pushed since then references, removes the others', async () => {
    const referenced = randomBytes(1000);
    const abandoned = randomBytes(1000);
    await pushBlob(registry.url, 'race/app', referenced);
    await pushBlob(registry.url, 'race/app', abandoned);
    const config = await pushBlob(registry.url, 'race/app', Buffer.from('{}'));
    await ageEverything();
    // A client that uploaded its layers long ago pushes the manifest now (as gc would be running).
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 2 },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(referenced), size: 1000 },
      ],
    });
    const put = await fetch(`${registry.url}/v2/race/app/manifests/${sha256(manifest)}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    });
    expect(put.status).to.equal(201);

    const report = await runGc(
      { REGISTRY_STORAGE_ROOT: registry.root },
      { dryRun: false, gracePeriodSeconds: 3600 },
      () => undefined,
    );
    expect(report.blobsRemoved.map((item) => item.digest)).to.deep.equal([sha256(abandoned)]);
    expect(await status(`${registry.url}/v2/race/app/blobs/${sha256(referenced)}`)).to.equal(200);
    expect(await status(`${registry.url}/v2/race/app/blobs/${config}`)).to.equal(200);
    expect(await status(`${registry.url}/v2/race/app/manifests/${sha256(manifest)}`)).to.equal(200);
  });
});
