import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { pushBlob, sha256, startTestRegistry, type TestRegistry } from '../../helpers/registry.js';

/**
 * Manifests of the hostile corpus (test/fixtures/hostile/manifests.json) against the registry on
 * port 0: too many descriptors is MANIFEST_INVALID before storage is touched, repeated
 * references are checked once, and another client's requests keep succeeding meanwhile.
 */

interface Case {
  what: string;
  layers?: number;
  index?: number;
  distinct?: boolean;
  status: number;
  code?: string;
}
const { cases } = JSON.parse(
  readFileSync(new URL('../../fixtures/hostile/manifests.json', import.meta.url), 'utf8'),
) as { cases: Case[] };

const CONFIG = Buffer.from('{"architecture":"amd64","os":"linux"}');
const LAYER = Buffer.from('one layer, referenced many times');

function manifestFor(test: Case, childDigest: string, childSize: number): Buffer {
  if (test.index !== undefined)
    return Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: Array.from({ length: test.index }, () => ({
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: childDigest,
          size: childSize,
        })),
      }),
    );
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: sha256(CONFIG),
        size: CONFIG.length,
      },
      layers: Array.from({ length: test.layers ?? 0 }, (_, i) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: test.distinct ? sha256(`missing layer ${i}`) : sha256(LAYER),
        size: LAYER.length,
      })),
    }),
  );
}

describe('hostile manifests', function () {
  this.timeout(60_000);
  let registry: TestRegistry;
  let child: { digest: string; size: number };
  before(async () => {
    registry = await startTestRegistry();
    await pushBlob(registry.url, 'hostile/app', CONFIG);
    await pushBlob(registry.url, 'hostile/app', LAYER);
    const body = manifestFor({ what: 'child', layers: 1, status: 201 }, '', 0);
    const put = await fetch(`${registry.url}/v2/hostile/app/manifests/child`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body,
    });
    expect(put.status).to.equal(201);
    child = { digest: sha256(body), size: body.length };
  });
  after(async () => {
    await registry.close();
  });

  for (const test of cases) {
    it(`answers ${test.what} with ${test.status}${test.code ? ` ${test.code}` : ''} while another client is served`, async () => {
      const body = manifestFor(test, child.digest, child.size);
      const put = fetch(`${registry.url}/v2/hostile/app/manifests/t${test.layers ?? test.index}`, {
        method: 'PUT',
        headers: {
          'content-type': test.index
            ? 'application/vnd.oci.image.index.v1+json'
            : 'application/vnd.oci.image.manifest.v1+json',
        },
        body,
      });
      // Another client pulls meanwhile: every request must succeed.
      const others = Array.from({ length: 40 }, (_, i) =>
        fetch(
          i % 2 === 0
            ? `${registry.url}/v2/hostile/app/blobs/${sha256(LAYER)}`
            : `${registry.url}/v2/hostile/app/manifests/child`,
          {
            headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
          },
        ).then(async (res) => (await res.arrayBuffer(), res.status)),
      );
      const res = await put;
      const answer = (await res.json().catch(() => ({}))) as {
        errors?: Array<{ code: string; message: string }>;
      };
      expect(res.status, JSON.stringify(answer)).to.equal(test.status);
      if (test.code) expect(answer.errors?.[0]?.code).to.equal(test.code);
      if (test.code === 'MANIFEST_INVALID') expect(answer.errors?.[0]?.message).to.match(/limit of 1000/);
      expect(await Promise.all(others)).to.deep.equal(others.map(() => 200));
    });
  }
});
