import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { expect } from 'chai';
import request from 'supertest';
import { pushBlob, pushImage, sha256, startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { tempDir } from '../../helpers/temp-dirs.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

describe('registry API (OCI distribution-spec v1.1)', function () {
  this.timeout(20_000);
  let registry: TestRegistry;
  let api: ReturnType<typeof request>;

  before(async () => {
    registry = await startTestRegistry();
    api = request(registry.url);
  });
  after(async () => registry?.close());

  describe('base and errors', () => {
    it('answers GET /v2/ with 200 {} and the API version header', async () => {
      const response = await api.get('/v2/').expect(200);
      expect(response.body).to.deep.equal({});
      expect(response.headers['docker-distribution-api-version']).to.equal('registry/2.0');
    });

    it('rejects names that are not spec names, including path traversal, with NAME_INVALID', async () => {
      for (const name of ['UPPER/case', 'a/../b', '..%2f..%2fetc', 'a//b', '-lead']) {
        const response = await api.get(`/v2/${name}/tags/list`);
        expect(response.status, name).to.be.oneOf([400, 404]);
        expect(response.body.errors[0].code, name).to.be.oneOf(['NAME_INVALID', 'UNSUPPORTED']);
      }
      const traversal = await api.get('/v2/a/../../etc/blobs/sha256:' + 'a'.repeat(64));
      expect(traversal.status).to.equal(400);
      expect(traversal.body.errors[0].code).to.equal('NAME_INVALID');
    });

    it('answers unknown blobs, manifests and repositories with the spec codes', async () => {
      const blob = await api.get(`/v2/none/blobs/sha256:${'0'.repeat(64)}`).expect(404);
      expect(blob.body).to.deep.include({
        errors: [
          {
            code: 'BLOB_UNKNOWN',
            message: 'blob unknown to registry',
            detail: { digest: `sha256:${'0'.repeat(64)}` },
          },
        ],
      });
      expect((await api.get('/v2/none/manifests/latest').expect(404)).body.errors[0].code).to.equal(
        'MANIFEST_UNKNOWN',
      );
      expect((await api.get('/v2/none/tags/list').expect(404)).body.errors[0].code).to.equal('NAME_UNKNOWN');
      expect((await api.get('/v2/none/blobs/sha256:xyz').expect(400)).body.errors[0].code).to.equal(
        'DIGEST_INVALID',
      );
      expect((await api.post('/v2/none/tags/list').expect(405)).body.errors[0].code).to.equal('UNSUPPORTED');
    });
  });

  describe('blobs', () => {
    const data = randomBytes(10_000);
    let digest: string;
    before(async () => {
      digest = await pushBlob(registry.url, 'blobs/test', data);
    });

    it('serves HEAD and GET with digest, length and type headers', async () => {
      const head = await api.head(`/v2/blobs/test/blobs/${digest}`).expect(200);
      expect(head.headers['content-length']).to.equal('10000');
      expect(head.headers['docker-content-digest']).to.equal(digest);
      expect(head.headers['content-type']).to.equal('application/octet-stream');
      const get = await api.get(`/v2/blobs/test/blobs/${digest}`).buffer(true).parse(binary).expect(200);
      expect(Buffer.compare(get.body as Buffer, data)).to.equal(0);
    });

    it('serves byte ranges (206) and refuses unsatisfiable ones (416)', async () => {
      const part = await api
        .get(`/v2/blobs/test/blobs/${digest}`)
        .set('Range', 'bytes=100-199')
        .buffer(true)
        .parse(binary)
        .expect(206);
      expect(part.headers['content-range']).to.equal('bytes 100-199/10000');
      expect(Buffer.compare(part.body as Buffer, data.subarray(100, 200))).to.equal(0);
      const tail = await api
        .get(`/v2/blobs/test/blobs/${digest}`)
        .set('Range', 'bytes=-10')
        .buffer(true)
        .parse(binary)
        .expect(206);
      expect(Buffer.compare(tail.body as Buffer, data.subarray(9990))).to.equal(0);
      const bad = await api.get(`/v2/blobs/test/blobs/${digest}`).set('Range', 'bytes=20000-').expect(416);
      expect(bad.headers['content-range']).to.equal('bytes */10000');
    });

    it('is readable only in repositories it was pushed or mounted into', async () => {
      await api.head(`/v2/blobs/other/blobs/${digest}`).expect(404);
      const mount = await api
        .post(`/v2/blobs/other/blobs/uploads/?mount=${digest}&from=blobs/test`)
        .expect(201);
      expect(mount.headers.location).to.equal(`/v2/blobs/other/blobs/${digest}`);
      await api.head(`/v2/blobs/other/blobs/${digest}`).expect(200);
      // Mounting from a repository that does not hold the blob falls back to an upload session.
      const fallback = await api
        .post(`/v2/blobs/third/blobs/uploads/?mount=${digest}&from=blobs/nothing`)
        .expect(202);
      expect(fallback.headers.location).to.match(/^\/v2\/blobs\/third\/blobs\/uploads\/[a-f0-9-]{36}$/);
      await api.delete(fallback.headers.location as string).expect(204);
    });

    it('rejects a monolithic push whose digest does not match, leaving nothing visible', async () => {
      const wrong = sha256('something else');
      const response = await api
        .post(`/v2/blobs/test/blobs/uploads/?digest=${wrong}`)
        .set('Content-Type', 'application/octet-stream')
        .send(randomBytes(100))
        .expect(400);
      expect(response.body.errors[0].code).to.equal('DIGEST_INVALID');
      await api.head(`/v2/blobs/test/blobs/${wrong}`).expect(404);
      expect(await fs.readdir(path.join(registry.root, 'uploads'))).to.deep.equal([]);
    });

    it('lets two clients push the same blob at the same time, both successfully', async () => {
      const shared = randomBytes(2 * 1024 * 1024);
      const digests = await Promise.all([
        pushBlob(registry.url, 'blobs/same-a', shared),
        pushBlob(registry.url, 'blobs/same-b', shared),
        pushBlob(registry.url, 'blobs/same-a', shared),
      ]);
      expect(new Set(digests)).to.deep.equal(new Set([sha256(shared)]));
      for (const name of ['blobs/same-a', 'blobs/same-b']) {
        const get = await api
          .get(`/v2/${name}/blobs/${sha256(shared)}`)
          .buffer(true)
          .parse(binary)
          .expect(200);
        expect(Buffer.compare(get.body as Buffer, shared)).to.equal(0);
      }
    });

    it('deletes a blob from one repository only', async () => {
      await api.delete(`/v2/blobs/other/blobs/${digest}`).expect(202);
      await api.head(`/v2/blobs/other/blobs/${digest}`).expect(404);
      await api.head(`/v2/blobs/test/blobs/${digest}`).expect(200);
    });
  });

  describe('chunked uploads', () => {
    it('accepts in-order chunks, reports progress, refuses out-of-order chunks with 416', async () => {
      const data = randomBytes(3000);
      const start = await api.post('/v2/chunks/test/blobs/uploads/').expect(202);
      expect(start.headers.range).to.equal('0-0');
      const location = start.headers.location as string;
      const first = await api
        .patch(location)
        .set('Content-Type', 'application/octet-stream')
        .set('Content-Range', '0-999')
        .send(data.subarray(0, 1000))
        .expect(202);
      expect(first.headers.range).to.equal('0-999');
      const skipped = await api
        .patch(location)
        .set('Content-Type', 'application/octet-stream')
        .set('Content-Range', '2000-2999')
        .send(data.subarray(2000))
        .expect(416);
      expect(skipped.body.errors[0].code).to.equal('BLOB_UPLOAD_INVALID');
      const status = await api.get(location).expect(204);
      expect(status.headers.range).to.equal('0-999');
      await api
        .patch(location)
        .set('Content-Type', 'application/octet-stream')
        .set('Content-Range', '1000-1999')
        .send(data.subarray(1000, 2000))
        .expect(202);
      const done = await api
        .put(`${location}?digest=${sha256(data)}`)
        .set('Content-Type', 'application/octet-stream')
        .set('Content-Range', '2000-2999')
        .send(data.subarray(2000))
        .expect(201);
      expect(done.headers['docker-content-digest']).to.equal(sha256(data));
      await api.get(location).expect(404);
      const get = await api
        .get(`/v2/chunks/test/blobs/${sha256(data)}`)
        .buffer(true)
        .parse(binary)
        .expect(200);
      expect(Buffer.compare(get.body as Buffer, data)).to.equal(0);
    });

    it('does not let another repository use an upload session', async () => {
      const start = await api.post('/v2/chunks/test/blobs/uploads/').expect(202);
      const uploadId = String(start.headers['docker-upload-uuid']);
      const response = await api.get(`/v2/chunks/other/blobs/uploads/${uploadId}`).expect(404);
      expect(response.body.errors[0].code).to.equal('BLOB_UPLOAD_UNKNOWN');
      await api.delete(start.headers.location as string).expect(204);
      await api.get(start.headers.location as string).expect(404);
    });

    it('removes uploads abandoned for longer than the upload timeout', async () => {
      let now = Date.now();
      const clocked = await startTestRegistry({ uploadTimeoutSeconds: 60, now: () => now });
      try {
        const start = await request(clocked.url).post('/v2/a/blobs/uploads/').expect(202);
        // A temp file left by a process killed between write and rename.
        await fs.mkdir(path.join(clocked.root, '_tmp'), { recursive: true });
        await fs.writeFile(path.join(clocked.root, '_tmp', 'leftover'), 'partial');
        expect(await clocked.app.purgeStaleUploads()).to.equal(0);
        expect(await fs.readdir(path.join(clocked.root, '_tmp'))).to.deep.equal(['leftover']);
        now += 61_000;
        expect(await clocked.app.purgeStaleUploads()).to.equal(1);
        await request(clocked.url)
          .get(start.headers.location as string)
          .expect(404);
        expect(await fs.readdir(path.join(clocked.root, 'uploads'))).to.deep.equal([]);
        expect(await fs.readdir(path.join(clocked.root, '_tmp'))).to.deep.equal([]);
      } finally {
        await clocked.close();
      }
    });
  });

  describe('manifests', () => {
    let image: Awaited<ReturnType<typeof pushImage>>;
    before(async () => {
      image = await pushImage(registry.url, 'man/app', 'v1', [randomBytes(100), randomBytes(200)]);
    });

    it('serves by tag and by digest with exact headers', async () => {
      for (const reference of ['v1', image.digest]) {
        const response = await api
          .get(`/v2/man/app/manifests/${reference}`)
          .set('Accept', OCI_MANIFEST)
          .buffer(true)
          .parse(binary)
          .expect(200);
        expect(response.headers['content-type']).to.equal(OCI_MANIFEST);
        expect(response.headers['docker-content-digest']).to.equal(image.digest);
        expect(Number(response.headers['content-length'])).to.equal(image.manifest.length);
        expect(Buffer.compare(response.body as Buffer, image.manifest)).to.equal(0);
      }
      const head = await api.head('/v2/man/app/manifests/v1').expect(200);
      expect(Number(head.headers['content-length'])).to.equal(image.manifest.length);
    });

    it('negotiates on Accept like Distribution: excluded media type is MANIFEST_UNKNOWN', async () => {
      await api.get('/v2/man/app/manifests/v1').set('Accept', DOCKER_MANIFEST).expect(404);
      await api
        .get('/v2/man/app/manifests/v1')
        .set('Accept', `${DOCKER_MANIFEST}, ${OCI_MANIFEST};q=0.5`)
        .expect(200);
      await api.get('/v2/man/app/manifests/v1').set('Accept', '*/*').expect(200);
    });

    it('validates pushes: JSON, media type, referenced content, digest and size', async () => {
      const put = (reference: string, body: string | Buffer, type = OCI_MANIFEST) =>
        api.put(`/v2/man/app/manifests/${reference}`).set('Content-Type', type).send(body.toString());
      expect((await put('bad', '{not json').expect(400)).body.errors[0].code).to.equal('MANIFEST_INVALID');
      expect(
        (await put('bad', image.manifest, 'application/vnd.unknown+json').expect(400)).body.errors[0].code,
      ).to.equal('MANIFEST_INVALID');
      const missing = JSON.parse(image.manifest.toString()) as { layers: { digest: string }[] };
      missing.layers[0]!.digest = sha256('never pushed');
      const unknown = await put('bad', JSON.stringify(missing)).expect(400);
      expect(unknown.body.errors[0].code).to.equal('MANIFEST_BLOB_UNKNOWN');
      expect(unknown.body.errors[0].detail).to.deep.equal({ digests: [sha256('never pushed')] });
      expect((await put(sha256('other'), image.manifest).expect(400)).body.errors[0].code).to.equal(
        'DIGEST_INVALID',
      );
      const huge = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
      expect((await put('huge', huge).expect(413)).body.errors[0].code).to.equal('SIZE_INVALID');
      const index = JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [{ mediaType: OCI_MANIFEST, digest: sha256('x'), size: 1 }],
      });
      expect((await put('idx', index, OCI_INDEX).expect(400)).body.errors[0].code).to.equal(
        'MANIFEST_BLOB_UNKNOWN',
      );
    });

    it('answers OCI-Subject and lists referrers, with the artifactType filter', async () => {
      const subject = { mediaType: OCI_MANIFEST, digest: image.digest, size: image.manifest.length };
      const sbom = await pushImage(registry.url, 'man/app', 'sbom', [randomBytes(10)], {
        artifactType: 'application/spdx+json',
        subject,
        annotations: { kind: 'sbom' },
      });
      const sig = await pushImage(registry.url, 'man/app', 'sig', [randomBytes(10)], {
        artifactType: 'application/example.sig',
        subject,
      });
      const all = await api.get(`/v2/man/app/referrers/${image.digest}`).expect(200);
      expect(all.headers['content-type']).to.equal(OCI_INDEX);
      expect(all.body.manifests.map((entry: { digest: string }) => entry.digest).sort()).to.deep.equal(
        [sbom.digest, sig.digest].sort(),
      );
      const filtered = await api
        .get(`/v2/man/app/referrers/${image.digest}?artifactType=application/spdx%2Bjson`)
        .expect(200);
      expect(filtered.headers['oci-filters-applied']).to.equal('artifactType');
      expect(filtered.body.manifests).to.deep.equal([
        {
          mediaType: OCI_MANIFEST,
          digest: sbom.digest,
          size: sbom.manifest.length,
          artifactType: 'application/spdx+json',
          annotations: { kind: 'sbom' },
        },
      ]);
      const response = await api
        .put('/v2/man/app/manifests/sig2')
        .set('Content-Type', OCI_MANIFEST)
        .send(sig.manifest.toString())
        .expect(201);
      expect(response.headers['oci-subject']).to.equal(image.digest);
    });

    it('deletes a tag alone, or a manifest with its tags', async () => {
      await pushImage(registry.url, 'del/app', 'a', [randomBytes(10)]);
      const second = await pushImage(registry.url, 'del/app', 'b', [randomBytes(11)]);
      await api
        .put('/v2/del/app/manifests/c')
        .set('Content-Type', OCI_MANIFEST)
        .send(second.manifest.toString())
        .expect(201);
      await api.delete('/v2/del/app/manifests/a').expect(202);
      await api.get('/v2/del/app/manifests/a').expect(404);
      await api.delete(`/v2/del/app/manifests/${second.digest}`).expect(202);
      expect((await api.get('/v2/del/app/tags/list').expect(200)).body.tags).to.deep.equal([]);
      await api.delete(`/v2/del/app/manifests/${second.digest}`).expect(404);
    });
  });

  describe('listing', () => {
    before(async () => {
      for (const tag of ['c', 'a', 'e', 'b', 'd'])
        await pushImage(registry.url, 'list/app', tag, [Buffer.from(tag)]);
    });

    it('pages tags with n and last, with a Link header', async () => {
      const first = await api.get('/v2/list/app/tags/list?n=2').expect(200);
      expect(first.body).to.deep.equal({ name: 'list/app', tags: ['a', 'b'] });
      expect(first.headers.link).to.equal('</v2/list/app/tags/list?n=2&last=b>; rel="next"');
      const last = await api.get('/v2/list/app/tags/list?n=2&last=d').expect(200);
      expect(last.body.tags).to.deep.equal(['e']);
      expect(last.headers.link).to.equal(undefined);
      expect((await api.get('/v2/list/app/tags/list?n=x').expect(400)).body.errors[0].code).to.equal(
        'UNSUPPORTED',
      );
    });

    it('lists repositories in /v2/_catalog with n and last', async () => {
      const all = await api.get('/v2/_catalog').expect(200);
      expect(all.body.repositories).to.include.members(['list/app', 'man/app', 'blobs/test']);
      expect(all.body.repositories).to.deep.equal([...all.body.repositories].sort());
      const page = await api.get('/v2/_catalog?n=1&last=del/app').expect(200);
      expect(page.body.repositories).to.deep.equal(['list/app']);
      expect(page.headers.link).to.equal('</v2/_catalog?n=1&last=list%2Fapp>; rel="next"');
    });
  });

  describe('metrics', () => {
    it('exposes Prometheus metrics per route', async () => {
      const response = await api.get('/metrics').expect(200);
      expect(response.text).to.match(
        /registry_http_requests_total\{method="GET",route="manifest",status="200"\} \d+/,
      );
      expect(response.text).to.include('registry_blob_bytes_received_total');
    });
  });
});

describe('registry API: auth and read-only mode', function () {
  this.timeout(20_000);

  it('requires Basic auth from the htpasswd file when configured', async () => {
    const dir = await tempDir('htpasswd-');
    const file = path.join(dir, 'htpasswd');
    await fs.writeFile(file, `alice:${bcrypt.hashSync('secret', 4).replace('$2b$', '$2y$')}\n`);
    const registry = await startTestRegistry({ htpasswd: file });
    try {
      const api = request(registry.url);
      const challenge = await api.get('/v2/').expect(401);
      expect(challenge.headers['www-authenticate']).to.equal('Basic realm="aios-registry"');
      expect(challenge.body.errors[0].code).to.equal('UNAUTHORIZED');
      await api.get('/v2/').auth('alice', 'wrong').expect(401);
      await api.get('/v2/').auth('alice', 'secret').expect(200);
      await pushBlob(registry.url, 'x', Buffer.from('y')).then(
        () => expect.fail('push without credentials must fail'),
        (error: Error) => expect(error.message).to.include('401'),
      );
    } finally {
      await registry.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses writes in read-only mode and still serves reads', async () => {
    const root = await tempDir('readonly-');
    const writable = await startTestRegistry({ root });
    await pushImage(writable.url, 'ro/app', 'v1', [Buffer.from('layer')]);
    await writable.close();
    const registry = await startTestRegistry({ root, readOnly: true });
    try {
      const api = request(registry.url);
      await api.get('/v2/ro/app/manifests/v1').expect(200);
      const refused = await api.post('/v2/ro/app/blobs/uploads/').expect(405);
      expect(refused.body.errors[0].code).to.equal('UNSUPPORTED');
      await api.delete('/v2/ro/app/manifests/v1').expect(405);
    } finally {
      await registry.close();
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});

/** supertest parser that keeps the body as bytes. */
function binary(response: unknown, callback: (error: Error | null, body: Buffer) => void): void {
  // In Node, superagent hands the parser the raw IncomingMessage.
  const stream = response as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => callback(null, Buffer.concat(chunks)));
}
