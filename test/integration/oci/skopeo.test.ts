import fs from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { expect } from 'chai';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { skopeo } from '../../helpers/skopeo.js';
import { tempDir } from '../../helpers/temp-dirs.js';
import {
  OciLayoutWriter,
  readLayoutBlob,
  readLayoutRef,
  type LayoutDescriptor,
} from '../../helpers/registry-oci-layout.js';

describe('registry: skopeo as a real client', function () {
  this.timeout(60_000);
  let registry: TestRegistry;
  let work: string;
  let source: string;
  let image: LayoutDescriptor;
  let multiArch: LayoutDescriptor;
  let layout: OciLayoutWriter;

  before(async () => {
    registry = await startTestRegistry();
    work = await tempDir('skopeo-test-');
    source = path.join(work, 'source');
    layout = new OciLayoutWriter(source);
    image = layout.image(4, 'amd64');
    multiArch = layout.index([layout.image(2, 'amd64'), layout.image(3, 'arm64')]);
    await layout.write({ app: image, multi: multiArch });
  });
  after(async () => {
    await registry?.close();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('copies a multi-layer OCI image into the registry and back with identical digests', async () => {
    await skopeo(
      'copy',
      '--dest-tls-verify=false',
      `oci:${source}:app`,
      `docker://${registry.host}/team/app:1.0`,
    );
    const back = path.join(work, 'back-app');
    await skopeo(
      'copy',
      '--src-tls-verify=false',
      `docker://${registry.host}/team/app:1.0`,
      `oci:${back}:app`,
    );
    const copied = await readLayoutRef(back, 'app');
    expect(copied?.digest).to.equal(image.digest);
    const manifest = JSON.parse((await readLayoutBlob(back, image.digest)).toString()) as {
      config: LayoutDescriptor;
      layers: LayoutDescriptor[];
    };
    expect(manifest.layers).to.have.length(4);
    for (const blob of [manifest.config, ...manifest.layers]) {
      expect(await readLayoutBlob(back, blob.digest)).to.deep.equal(layout.blobs.get(blob.digest));
    }
  });

  it('copies a multi-arch index with --all, keeping the index and every child digest', async () => {
    await skopeo(
      'copy',
      '--all',
      '--dest-tls-verify=false',
      `oci:${source}:multi`,
      `docker://${registry.host}/team/multi:1.0`,
    );
    const back = path.join(work, 'back-multi');
    await skopeo(
      'copy',
      '--all',
      '--src-tls-verify=false',
      `docker://${registry.host}/team/multi:1.0`,
      `oci:${back}:multi`,
    );
    expect((await readLayoutRef(back, 'multi'))?.digest).to.equal(multiArch.digest);
    const index = JSON.parse((await readLayoutBlob(back, multiArch.digest)).toString()) as {
      manifests: LayoutDescriptor[];
    };
    expect(index.manifests.map((child) => child.platform?.architecture)).to.deep.equal(['amd64', 'arm64']);
    for (const child of index.manifests) {
      expect(await readLayoutBlob(back, child.digest)).to.deep.equal(layout.blobs.get(child.digest));
    }
    const raw = await skopeo(
      'inspect',
      '--raw',
      '--tls-verify=false',
      `docker://${registry.host}/team/multi:1.0`,
    );
    expect(raw).to.equal(layout.blobs.get(multiArch.digest)?.toString());
  });

  it('accepts Docker schema2 manifests (skopeo --format v2s2) and serves them with their media type', async () => {
    await skopeo(
      'copy',
      '--format',
      'v2s2',
      '--dest-tls-verify=false',
      `oci:${source}:app`,
      `docker://${registry.host}/team/docker:1.0`,
    );
    const raw = JSON.parse(
      await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/team/docker:1.0`),
    ) as {
      mediaType: string;
      layers: unknown[];
    };
    expect(raw.mediaType).to.equal('application/vnd.docker.distribution.manifest.v2+json');
    expect(raw.layers).to.have.length(4);
    const back = path.join(work, 'back-docker');
    await skopeo(
      'copy',
      '--src-tls-verify=false',
      `docker://${registry.host}/team/docker:1.0`,
      `dir:${back}`,
    );
    const manifest = JSON.parse(await fs.readFile(path.join(back, 'manifest.json'), 'utf8')) as {
      mediaType: string;
    };
    expect(manifest.mediaType).to.equal('application/vnd.docker.distribution.manifest.v2+json');
  });

  it('pushes and pulls with credentials when the registry requires htpasswd auth', async () => {
    const htpasswd = path.join(work, 'htpasswd');
    await fs.writeFile(htpasswd, `ci:${bcrypt.hashSync('pa55', 4).replace('$2b$', '$2y$')}\n`);
    const secured = await startTestRegistry({ htpasswd });
    try {
      const target = `docker://${secured.host}/team/private:1.0`;
      const denied = await skopeo('copy', '--dest-tls-verify=false', `oci:${source}:app`, target).then(
        () => 'pushed',
        (failure: Error & { stderr?: string }) => failure.stderr ?? failure.message,
      );
      expect(denied).to.match(/authentication required|unauthorized/i);
      await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', 'ci:pa55', `oci:${source}:app`, target);
      const inspected = JSON.parse(
        await skopeo('inspect', '--tls-verify=false', '--creds', 'ci:pa55', target),
      ) as {
        Digest: string;
      };
      expect(inspected.Digest).to.equal(image.digest);
    } finally {
      await secured.close();
    }
  });

  it('inspects, lists tags and deletes', async () => {
    await skopeo(
      'copy',
      '--dest-tls-verify=false',
      `oci:${source}:app`,
      `docker://${registry.host}/team/app:2.0`,
    );
    const inspected = JSON.parse(
      await skopeo('inspect', '--tls-verify=false', `docker://${registry.host}/team/app:1.0`),
    ) as {
      Digest: string;
      Layers: string[];
      Architecture: string;
    };
    expect(inspected.Digest).to.equal(image.digest);
    expect(inspected.Layers).to.have.length(4);
    expect(inspected.Architecture).to.equal('amd64');

    const tags = JSON.parse(
      await skopeo('list-tags', '--tls-verify=false', `docker://${registry.host}/team/app`),
    ) as {
      Tags: string[];
    };
    expect(tags.Tags).to.deep.equal(['1.0', '2.0']);

    // skopeo deletes by digest: the manifest goes, and with it every tag pointing at it.
    await skopeo('delete', '--tls-verify=false', `docker://${registry.host}/team/app:1.0`);
    const error = await skopeo(
      'inspect',
      '--tls-verify=false',
      `docker://${registry.host}/team/app:1.0`,
    ).then(
      () => undefined,
      (failure: Error & { stderr?: string }) => failure.stderr ?? failure.message,
    );
    expect(error).to.match(/manifest unknown/i);
    const after = JSON.parse(
      await skopeo('list-tags', '--tls-verify=false', `docker://${registry.host}/team/app`),
    ) as {
      Tags: string[];
    };
    expect(after.Tags).to.deep.equal([]);
  });
});
