import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { gzipSync, deflateSync, brotliCompressSync } from 'node:zlib';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { STORE_KINDS, startCatalog, type TestCatalog } from '../helpers/catalog.js';

/**
 * The hostile corpus (test/fixtures/hostile/) against the catalog on both stores: every input is
 * a 400 in the envelope that names the problem and changes nothing. Slow regexes against long
 * values run against a separate server process (test/integration/hostile-load.test.ts), where a
 * hang cannot stop the test runner itself.
 */

const hostile = (name: string) =>
  JSON.parse(readFileSync(new URL(`../fixtures/hostile/${name}`, import.meta.url), 'utf8')) as Record<
    string,
    unknown
  >;
const REGEXES = hostile('regexes.json') as { unsupported: Array<{ pattern: string; construct: string }> };
const PATHS = hostile('paths.json') as {
  segments: string[];
  filters: unknown[];
  updates: unknown[];
  sorts: string[];
};

const ID = '7a1c0d2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f';
const REGISTRY = {
  container_registry_id: ID,
  container_registry_name: 'hostile-target',
  container_registry_public_url: 'http://registry.example.test:5000',
  container_registry_tags: ['aaab', 'prod'],
  container_registry_metadata: { list: ['aaab', 'x'], team: 'core' },
};

interface Answer {
  status: number;
  body: { success?: boolean; error?: string; data?: unknown[] };
}

function expectEnvelope400(res: Answer, message: RegExp): void {
  expect(res.status, JSON.stringify(res.body)).to.equal(400);
  expect(res.body.success).to.equal(false);
  expect(res.body.error).to.match(message);
}

/** POSTs raw bytes (supertest re-encodes Buffers sent as JSON) to the catalog on port 0. */
async function postRaw(handler: http.RequestListener, encoding: string, body: Buffer): Promise<Answer> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const res = await fetch(
      `http://127.0.0.1:${(server.address() as AddressInfo).port}/container_registries`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': encoding },
        body,
      },
    );
    return { status: res.status, body: (await res.json()) as Answer['body'] };
  } finally {
    server.close();
  }
}

for (const kind of STORE_KINDS) {
  describe(`hostile input (${kind} store)`, function () {
    let catalog: TestCatalog;
    beforeEach(async () => {
      catalog = await startCatalog(kind);
      expect((await catalog.api.post('/container_registry', REGISTRY)).status).to.equal(201);
    });
    afterEach(async () => {
      await catalog.stop();
    });

    describe('regexes the linear-time engine cannot run', () => {
      for (const { pattern, construct } of REGEXES.unsupported) {
        it(`refuses ${pattern} in a filter and in $pull, naming ${construct}`, async () => {
          const found = await catalog.api.post('/container_registries', {
            container_registry_name: { $regex: pattern },
          });
          expectEnvelope400(found, new RegExp(construct.replace(/[()]/g, '\\$&')));
          const pulled = await catalog.api.put(`/container_registry/${ID}`, {
            $pull: { container_registry_tags: { $regex: pattern } },
          });
          expectEnvelope400(pulled, new RegExp(construct.replace(/[()]/g, '\\$&')));
        });
      }

      it('still runs the regexes clients use, with flags, in filters and $pull', async () => {
        const found = await catalog.api.post('/container_registries', {
          container_registry_name: { $regex: '^HOSTILE-', $options: 'i' },
          'container_registry_metadata.list': { $regex: 'a+b$' },
        });
        expect(found.status).to.equal(200);
        expect(found.body.data).to.have.length(1);
        const none = await catalog.api.post('/container_registries', {
          container_registry_name: { $not: { $regex: 'target$' } },
        });
        expect(none.body.data).to.have.length(0);
        const pulled = await catalog.api.put(`/container_registry/${ID}`, {
          $pull: { container_registry_tags: { $regex: '^(a|aa)*b$' } },
        });
        expect(pulled.status).to.equal(200);
        expect(pulled.body.data.container_registry.container_registry_tags).to.deep.equal(['prod']);
      });
    });

    describe('prototype path segments', () => {
      afterEach(() => {
        // The catalog runs in this process: nothing may have reached Object.prototype.
        expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
        expect(Object.prototype).to.not.have.own.property('polluted');
      });

      for (const filter of PATHS.filters) {
        it(`refuses the filter ${JSON.stringify(filter)} with 400 naming the segment`, async () => {
          const res = await catalog.api.post('/container_registries', filter);
          expectEnvelope400(res, /"(__proto__|constructor|prototype)"/);
        });
      }
      for (const update of PATHS.updates) {
        it(`refuses the update ${JSON.stringify(update)} with 400 naming the segment`, async () => {
          const before = await catalog.api.get(`/container_registry/${ID}`);
          const res = await catalog.api.put(`/container_registry/${ID}`, update);
          expectEnvelope400(res, /"(__proto__|constructor|prototype)"/);
          const after = await catalog.api.get(`/container_registry/${ID}`);
          expect(after.body.data).to.deep.equal(before.body.data);
        });
      }
      for (const sort of PATHS.sorts) {
        it(`refuses sort=${sort} with 400 naming the segment`, async () => {
          const res = await catalog.api.post(`/container_registries?sort=${encodeURIComponent(sort)}`, {});
          expectEnvelope400(res, /"(__proto__|constructor|prototype)"/);
        });
      }
    });

    describe('compressed bodies that do not decode', () => {
      const valid = Buffer.from(JSON.stringify({ container_registry_name: 'hostile-target' }));
      const corrupt: Array<[string, string, Buffer]> = [
        ['gzip', 'gzip', Buffer.from('this is not gzip')],
        ['truncated gzip', 'gzip', gzipSync(valid).subarray(0, 12)],
        ['deflate', 'deflate', Buffer.from('this is not deflate')],
        ['truncated deflate', 'deflate', deflateSync(valid).subarray(0, 6)],
        ['br', 'br', Buffer.from('this is not brotli at all')],
        ['truncated br', 'br', brotliCompressSync(valid).subarray(0, 5)],
      ];
      for (const [what, encoding, body] of corrupt) {
        it(`answers a corrupt ${what} body with 400 in the envelope`, async () => {
          const res = await postRaw(catalog.catalog.handler, encoding, body);
          expectEnvelope400(res, /Content-Encoding/);
        });
      }
      it('still accepts a gzip body that decodes', async () => {
        const res = await postRaw(catalog.catalog.handler, 'gzip', gzipSync(valid));
        expect(res.status, JSON.stringify(res.body)).to.equal(200);
        expect(res.body.data).to.have.length(1);
      });
    });
  });
}
