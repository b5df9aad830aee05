import { expect } from 'chai';
import { ConfigError } from '../../../src/shared/config/env.js';
import { loadOciConfig } from '../../../src/oci/config.js';
import { parseManifest } from '../../../src/oci/domain/manifests.js';
import { parseDigest, parseReference, validateName } from '../../../src/oci/domain/names.js';
import { OciError } from '../../../src/oci/errors.js';
import { parseRange } from '../../../src/oci/http/blob-routes.js';
import { accepts } from '../../../src/oci/http/manifest-routes.js';
import { parseContentRange } from '../../../src/oci/http/upload-routes.js';

const HEX = 'a'.repeat(64);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof OciError) return `${error.status} ${error.code}`;
    throw error;
  }
  return undefined;
}

describe('registry: names, references and digests', () => {
  it('accepts spec repository names', () => {
    for (const name of ['a', 'library/ubuntu', 'my-org/my_app/v1.2', 'a__b', 'a---b/c.d']) {
      expect(validateName(name)).to.equal(name);
    }
  });

  it('rejects names that could escape the storage root or break the spec', () => {
    for (const name of [
      '..',
      'a/..',
      'a/../b',
      '/a',
      'a/',
      'A',
      'a b',
      'a%2fb',
      '_a',
      'a/_layers',
      '.a',
      'a'.repeat(256),
    ]) {
      expect(
        codeOf(() => validateName(name)),
        name,
      ).to.equal('400 NAME_INVALID');
    }
  });

  it('parses sha256 and sha512 digests and rejects anything else', () => {
    expect(parseDigest(`sha256:${HEX}`)).to.deep.equal({
      algorithm: 'sha256',
      hex: HEX,
      value: `sha256:${HEX}`,
    });
    expect(parseDigest(`sha512:${'b'.repeat(128)}`).algorithm).to.equal('sha512');
    for (const bad of [
      `sha256:${HEX.slice(1)}`,
      `sha256:${HEX.toUpperCase()}`,
      `md5:${HEX}`,
      HEX,
      `sha256:../${HEX}`,
    ]) {
      expect(
        codeOf(() => parseDigest(bad)),
        bad,
      ).to.equal('400 DIGEST_INVALID');
    }
  });

  it('tells tags from digests; a malformed tag is invalid on push and unknown on read', () => {
    expect(parseReference('v1.0_rc-1', 'ManifestInvalid')).to.deep.equal({ kind: 'tag', tag: 'v1.0_rc-1' });
    expect(parseReference(`sha256:${HEX}`, 'ManifestInvalid').kind).to.equal('digest');
    expect(codeOf(() => parseReference('.hidden', 'ManifestInvalid'))).to.equal('400 MANIFEST_INVALID');
    expect(codeOf(() => parseReference('.hidden', 'ManifestUnknown'))).to.equal('404 MANIFEST_UNKNOWN');
    expect(codeOf(() => parseReference('t'.repeat(129), 'ManifestInvalid'))).to.equal('400 MANIFEST_INVALID');
  });
});

describe('registry: manifest validation', () => {
  const descriptor = (mediaType: string) => ({ mediaType, digest: `sha256:${HEX}`, size: 1 });
  const image = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: descriptor('application/vnd.oci.image.config.v1+json'),
    layers: [descriptor('application/vnd.oci.image.layer.v1.tar+gzip')],
  };
  const parse = (body: unknown, type?: string) => parseManifest(Buffer.from(JSON.stringify(body)), type);

  it('extracts references, subject and the artifactType the referrers API reports', () => {
    const parsed = parse({ ...image, subject: descriptor('application/vnd.oci.image.manifest.v1+json') });
    expect(parsed.blobs.map((digest) => digest.value)).to.deep.equal([`sha256:${HEX}`, `sha256:${HEX}`]);
    expect(parsed.subject?.value).to.equal(`sha256:${HEX}`);
    expect(parsed.artifactType).to.equal('application/vnd.oci.image.config.v1+json');
  });

  it('takes the media type from Content-Type when the body has none, and refuses a mismatch', () => {
    const { mediaType: _omitted, ...bare } = image;
    expect(parse(bare, 'application/vnd.oci.image.manifest.v1+json; charset=utf-8').mediaType).to.equal(
      'application/vnd.oci.image.manifest.v1+json',
    );
    expect(codeOf(() => parse(bare))).to.equal('400 MANIFEST_INVALID');
    expect(codeOf(() => parse(image, 'application/vnd.oci.image.index.v1+json'))).to.equal(
      '400 MANIFEST_INVALID',
    );
  });

  it('refuses malformed descriptors and unknown media types', () => {
    expect(codeOf(() => parse({ ...image, layers: [{ mediaType: 'x', digest: 'nope', size: 1 }] }))).to.equal(
      '400 MANIFEST_INVALID',
    );
    expect(codeOf(() => parse({ ...image, config: { ...image.config, size: -1 } }))).to.equal(
      '400 MANIFEST_INVALID',
    );
    expect(
      codeOf(() => parse({ ...image, mediaType: 'application/vnd.docker.distribution.manifest.v1+json' })),
    ).to.equal('400 MANIFEST_INVALID');
    expect(codeOf(() => parse({ ...image, schemaVersion: 1 }))).to.equal('400 MANIFEST_INVALID');
  });

  it('does not require foreign or non-distributable layers to exist', () => {
    const parsed = parse({
      ...image,
      layers: [
        descriptor('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'),
        descriptor('application/vnd.oci.image.layer.nondistributable.v1.tar+gzip'),
      ],
    });
    expect(parsed.blobs).to.have.length(1);
  });
});

describe('registry: HTTP header parsing', () => {
  it('parses byte ranges as RFC 9110 says', () => {
    expect(parseRange(undefined, 100)).to.equal(undefined);
    expect(parseRange('bytes=0-9', 100)).to.deep.equal({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).to.deep.equal({ start: 90, end: 99 });
    expect(parseRange('bytes=-5', 100)).to.deep.equal({ start: 95, end: 99 });
    expect(parseRange('bytes=50-500', 100)).to.deep.equal({ start: 50, end: 99 });
    expect(parseRange('bytes=0-1,5-6', 100)).to.equal(undefined);
    expect(codeOf(() => parseRange('bytes=100-', 100))).to.equal('416 SIZE_INVALID');
  });

  it('parses upload Content-Range in the spec form', () => {
    expect(parseContentRange('0-99')).to.deep.equal({ start: 0, end: 99 });
    expect(parseContentRange('bytes 100-199/*')).to.deep.equal({ start: 100, end: 199 });
    expect(codeOf(() => parseContentRange('abc'))).to.equal('400 BLOB_UPLOAD_INVALID');
    expect(codeOf(() => parseContentRange('9-3'))).to.equal('416 BLOB_UPLOAD_INVALID');
  });

  it('negotiates manifests on Accept', () => {
    const oci = 'application/vnd.oci.image.manifest.v1+json';
    expect(accepts(undefined, oci)).to.equal(true);
    expect(accepts(`${oci}; q=0.9`, oci)).to.equal(true);
    expect(accepts('application/vnd.docker.distribution.manifest.v2+json', oci)).to.equal(false);
    expect(accepts('application/json', oci)).to.equal(true);
  });
});

describe('registry: configuration', () => {
  it('has documented defaults', () => {
    expect(loadOciConfig({})).to.include({
      host: '0.0.0.0',
      port: 5000,
      storageRoot: './data/registry',
      readOnly: false,
      htpasswd: undefined,
    });
  });

  it('reads the environment and names a bad variable', () => {
    const config = loadOciConfig({
      REGISTRY_PORT: '5001',
      REGISTRY_READ_ONLY: 'true',
      REGISTRY_HTPASSWD: '/etc/htpasswd',
    });
    expect(config).to.include({ port: 5001, readOnly: true, htpasswd: '/etc/htpasswd' });
    expect(() => loadOciConfig({ REGISTRY_PORT: 'x' })).to.throw(ConfigError, 'REGISTRY_PORT');
    expect(() => loadOciConfig({ REGISTRY_READ_ONLY: 'maybe' })).to.throw(ConfigError, 'REGISTRY_READ_ONLY');
  });
});
