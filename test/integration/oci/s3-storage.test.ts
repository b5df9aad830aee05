/**
 * The registry on S3 storage (gofakes3 on loopback): the official conformance suite and skopeo
 * round trips, the same as on the filesystem. Replicas and SIGKILL rounds: s3-replicas.test.ts.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { S3Driver } from '../../../src/oci/storage/s3-driver.js';
import { expectAllPassed, runSuite } from '../../helpers/conformance.js';
import { buildConformanceSuite, startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import {
  OciLayoutWriter,
  readLayoutBlob,
  readLayoutRef,
  type LayoutDescriptor,
} from '../../helpers/registry-oci-layout.js';
import { startS3Server, type TestS3Server } from '../../helpers/s3-server.js';
import { skopeo } from '../../helpers/skopeo.js';
import { tempDir } from '../../helpers/temp-dirs.js';

describe('registry on S3 storage (gofakes3)', function () {
  this.timeout(240_000);
  let s3: TestS3Server;
  let registry: TestRegistry;
  let driver: S3Driver;

  before(async () => {
    s3 = await startS3Server();
  });
  beforeEach(async () => {
    driver = new S3Driver(await s3.bucket('registry'));
    registry = await startTestRegistry({ driver });
  });
  afterEach(async () => {
    await registry?.close();
    driver?.client.destroy();
  });
  after(async () => s3?.stop());

  it('passes every test of the OCI conformance suite (all four workflows)', async () => {
    const binary = await buildConformanceSuite();
    expectAllPassed(await runSuite(binary, registry.url));
    // The content really is in the bucket, not in a directory of this process.
    expect(await driver.list('repositories/conformance')).to.include('repo1');
    expect((await driver.list('blobs/sha256')).length).to.be.greaterThan(3);
  });

  it('copies an image and a multi-arch index in and out with skopeo, digests unchanged', async function () {
    this.timeout(120_000);
    const work = await tempDir('skopeo-s3-');
    try {
      const source = path.join(work, 'source');
      const layout = new OciLayoutWriter(source);
      const image = layout.image(3, 'amd64');
      const multi = layout.index([layout.image(2, 'amd64'), layout.image(2, 'arm64')]);
      await layout.write({ app: image, multi });
      const target = (repo: string) => `docker://${registry.host}/team/${repo}:1.0`;
      await skopeo('copy', '--dest-tls-verify=false', `oci:${source}:app`, target('app'));
      await skopeo('copy', '--all', '--dest-tls-verify=false', `oci:${source}:multi`, target('multi'));

      const back = path.join(work, 'back');
      await skopeo('copy', '--src-tls-verify=false', target('app'), `oci:${back}:app`);
      await skopeo('copy', '--all', '--src-tls-verify=false', target('multi'), `oci:${back}:multi`);
      expect((await readLayoutRef(back, 'app'))?.digest).to.equal(image.digest);
      expect((await readLayoutRef(back, 'multi'))?.digest).to.equal(multi.digest);
      const manifest = JSON.parse((await readLayoutBlob(back, image.digest)).toString()) as {
        config: LayoutDescriptor;
        layers: LayoutDescriptor[];
      };
      for (const blob of [manifest.config, ...manifest.layers]) {
        expect(await readLayoutBlob(back, blob.digest)).to.deep.equal(layout.blobs.get(blob.digest));
      }
      const tags = JSON.parse(
        await skopeo('list-tags', '--tls-verify=false', `docker://${registry.host}/team/app`),
      ) as {
        Tags: string[];
      };
      expect(tags.Tags).to.deep.equal(['1.0']);
      await skopeo('delete', '--tls-verify=false', target('app'));
      const gone = await skopeo('inspect', '--tls-verify=false', target('app')).then(
        () => 'still there',
        (failure: Error & { stderr?: string }) => failure.stderr ?? failure.message,
      );
      expect(gone).to.match(/manifest unknown/i);
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
