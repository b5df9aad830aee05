import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { sha256, tempDir } from '../../helpers/registry.js';
import { assertConsistent, pushImage, startRegistry, trickle } from '../../helpers/registry-push.js';

describe('registry: SIGKILL during concurrent pushes', function () {
  this.timeout(60_000);
  let root: string;

  before(async () => {
    root = await tempDir('registry-crash-');
  });
  after(async () => fs.rm(root, { recursive: true, force: true }));

  it('leaves no corrupt or half-visible blob or manifest, and the retried pushes succeed', async () => {
    // Eight clients; two of them push the very same layers at the same time.
    const shared = [randomBytes(3 * 1024 * 1024), randomBytes(2 * 1024 * 1024)];
    const images = Array.from({ length: 8 }, (_, i) => ({
      name: `crash/app${i % 3}`,
      tag: `v${i}`,
      layers: i < 2 ? shared : [randomBytes(2 * 1024 * 1024 + i), randomBytes(1024 * 1024)],
      chunked: i % 2 === 1,
    }));

    const first = await startRegistry(root);
    const inFlight = images.map((image) =>
      pushImage(first.base, image.name, image.tag, image.layers, image.chunked).then(
        () => 'done',
        () => 'failed',
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    first.process.child.kill('SIGKILL');
    const outcomes = await Promise.all(inFlight);
    expect(outcomes, 'the kill must hit pushes in flight').to.include('failed');
    await first.process.exited;

    await assertConsistent(root);

    const second = await startRegistry(root);
    try {
      const digests = await Promise.all(
        images.map((image) => pushImage(second.base, image.name, image.tag, image.layers, image.chunked)),
      );
      for (const [i, image] of images.entries()) {
        const response = await fetch(`${second.base}/v2/${image.name}/manifests/${image.tag}`, {
          headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
        });
        expect(response.status).to.equal(200);
        expect(response.headers.get('docker-content-digest')).to.equal(digests[i]);
        for (const layer of image.layers) {
          const blob = await fetch(`${second.base}/v2/${image.name}/blobs/${sha256(layer)}`);
          expect(sha256(Buffer.from(await blob.arrayBuffer()))).to.equal(sha256(layer));
        }
      }
      expect(await assertConsistent(root)).to.be.at.least(12);
    } finally {
      second.process.child.kill('SIGTERM');
      await second.process.exited;
    }
  });
});

describe('registry: graceful shutdown', function () {
  this.timeout(30_000);

  it('finishes a push in flight after SIGTERM, refuses new connections, and exits 0', async () => {
    const root = await tempDir('registry-shutdown-');
    try {
      const { process: child, base } = await startRegistry(root);
      const blob = randomBytes(2 * 1024 * 1024);
      const push = trickle(`${base}/v2/stop/app/blobs/uploads/?digest=${sha256(blob)}`, 'POST', blob);
      await new Promise((resolve) => setTimeout(resolve, 50));
      child.child.kill('SIGTERM');
      expect((await push).status).to.equal(201);
      expect((await child.exited).code).to.equal(0);
      await fetch(`${base}/v2/`).then(
        () => expect.fail('the registry still accepts connections'),
        (error: Error) => expect(error.message).to.equal('fetch failed'),
      );
      const stored = await fs.readFile(
        path.join(root, 'blobs', 'sha256', sha256(blob).slice(7, 9), sha256(blob).slice(7)),
      );
      expect(Buffer.compare(stored, blob)).to.equal(0);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});
