import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import request from 'supertest';
import { STORE_KINDS, TEST_CIPHER, startCatalog, type TestCatalog } from '../helpers/catalog.js';

const entry = JSON.parse(readFileSync(new URL('../fixtures/entry.json', import.meta.url), 'utf8')) as Record<
  string,
  unknown
>;
const ID = entry.container_registry_id as string;

function registry(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    container_registry_name: 'r',
    container_registry_public_url: 'http://registry.example.test:5000',
    ...overrides,
  };
}

for (const kind of STORE_KINDS) {
  describe(`catalog API (${kind} store)`, function () {
    let catalog: TestCatalog;
    beforeEach(async () => {
      catalog = await startCatalog(kind);
    });
    afterEach(async () => {
      await catalog.stop();
    });

    describe('the seed workflow', () => {
      it('creates, reads, updates, queries and deletes the seed entry.json in the AIOS envelope', async () => {
        const api = catalog.api;
        const created = await api.post('/container_registry', entry);
        expect(created.status).to.equal(201);
        expect(created.headers.location).to.equal(`/container_registry/${ID}`);
        expect(created.headers.etag).to.match(/^"[\w-]+"$/);
        expect(created.body).to.deep.equal({
          success: true,
          data: { message: 'Container registry created', id: ID, container_registry: entry },
        });

        const read = await api.get(`/container_registry/${ID}`);
        expect(read.status).to.equal(200);
        expect(read.body).to.deep.equal({ success: true, data: entry });
        expect(read.headers.etag).to.equal(created.headers.etag);

        const updated = await api.put(`/container_registry/${ID}`, {
          $set: { container_registry_name: 'updated-name' },
        });
        expect(updated.status).to.equal(200);
        expect(updated.body.data.message).to.equal('Container registry updated');
        expect(updated.body.data.container_registry.container_registry_name).to.equal('updated-name');
        expect(updated.headers.etag).to.not.equal(created.headers.etag);

        const found = await api.post('/container_registries', {
          container_registry_tags: { $in: ['ai', 'internal'] },
        });
        expect(found.status).to.equal(200);
        expect(found.body.data).to.have.length(1);
        expect(found.body.data[0].container_registry_name).to.equal('updated-name');
        expect(found.headers['x-total-count']).to.equal('1');

        const deleted = await api.delete(`/container_registry/${ID}`);
        expect(deleted.status).to.equal(200);
        expect(deleted.body).to.deep.equal({
          success: true,
          data: { message: 'Container registry deleted' },
        });
        expect((await api.get(`/container_registry/${ID}`)).status).to.equal(404);
        expect((await api.delete(`/container_registry/${ID}`)).status).to.equal(404);
      });
    });

    describe('POST /container_registry', () => {
      it('generates a UUID v4 and fills the defaults', async () => {
        const res = await catalog.api.post('/container_registry', registry());
        expect(res.status).to.equal(201);
        const doc = res.body.data.container_registry;
        expect(doc.container_registry_id).to.match(
          /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
        );
        expect(res.body.data.id).to.equal(doc.container_registry_id);
        expect(doc).to.deep.include({
          container_registry_metadata: {},
          container_registry_tags: [],
          container_registry_image_prefix: '',
          container_registry_config: {},
          container_registry_storage_info: {},
        });
      });

      it('refuses a duplicate id with 409 and keeps the first', async () => {
        await catalog.api.post('/container_registry', entry);
        const again = await catalog.api.post('/container_registry', {
          ...entry,
          container_registry_name: 'other',
        });
        expect(again.status).to.equal(409);
        expect(again.body.success).to.equal(false);
        expect(
          (await catalog.api.get(`/container_registry/${ID}`)).body.data.container_registry_name,
        ).to.equal('internal-ai-registry');
      });

      it('stores an upper-case id in lower case and finds it either way', async () => {
        const res = await catalog.api.post(
          '/container_registry',
          registry({ container_registry_id: ID.toUpperCase() }),
        );
        expect(res.body.data.id).to.equal(ID);
        expect((await catalog.api.get(`/container_registry/${ID.toUpperCase()}`)).status).to.equal(200);
      });

      const invalid: Array<[string, Record<string, unknown>, string]> = [
        ['an unknown field', registry({ owner: 'x' }), '/owner'],
        ['a missing name', { container_registry_public_url: 'http://a.test' }, '/container_registry_name'],
        ['a missing URL', { container_registry_name: 'x' }, '/container_registry_public_url'],
        [
          'an ftp URL',
          registry({ container_registry_public_url: 'ftp://a.test' }),
          '/container_registry_public_url',
        ],
        [
          'a URL with credentials',
          registry({ container_registry_public_url: 'http://u:p@a.test' }),
          '/container_registry_public_url',
        ],
        ['an id that is not a UUID', registry({ container_registry_id: 'abc' }), '/container_registry_id'],
        ['duplicate tags', registry({ container_registry_tags: ['a', 'a'] }), '/container_registry_tags'],
        [
          'a tag that is not a string',
          registry({ container_registry_tags: [1] }),
          '/container_registry_tags/0',
        ],
        [
          'a metadata key with a dot',
          registry({ container_registry_metadata: { 'a.b': 1 } }),
          '/container_registry_metadata',
        ],
        [
          'a metadata key starting with $',
          registry({ container_registry_metadata: { $where: 1 } }),
          '/container_registry_metadata',
        ],
        [
          'an unknown storage_type',
          registry({ container_registry_storage_info: { storage_type: 'tape' } }),
          '/container_registry_storage_info/storage_type',
        ],
        [
          'a storage_size below -1',
          registry({ container_registry_storage_info: { storage_size: -2 } }),
          '/container_registry_storage_info/storage_size',
        ],
        [
          'an image prefix with a scheme',
          registry({ container_registry_image_prefix: 'http://a.test' }),
          '/container_registry_image_prefix',
        ],
      ];
      for (const [what, body, pointer] of invalid) {
        it(`refuses ${what} with 400 and a pointer, storing nothing`, async () => {
          const res = await catalog.api.post('/container_registry', body);
          expect(res.status).to.equal(400);
          expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
          expect(res.body.success).to.equal(false);
          expect(res.body.error).to.be.a('string').with.length.greaterThan(0);
          expect(res.body.errors.map((e: { pointer: string }) => e.pointer)).to.include(pointer);
          expect((await catalog.api.post('/container_registries', {})).body.data).to.have.length(0);
        });
      }

      it('answers malformed JSON with 400, a non-JSON body with 415 and a large body with 413', async () => {
        const malformed = await catalog.api.post('/container_registry', undefined, {
          raw: '{"a":',
          contentType: 'application/json',
        });
        expect(malformed.status).to.equal(400);
        expect(malformed.body.error).to.equal('The request body is not valid JSON');
        const text = await catalog.api.post('/container_registry', undefined, {
          raw: 'name=x',
          contentType: 'text/plain',
        });
        expect(text.status).to.equal(415);
        const huge = registry({ container_registry_metadata: { blob: 'x'.repeat(2 * 1024 * 1024) } });
        const large = await catalog.api.post('/container_registry', huge);
        expect(large.status).to.equal(413);
        expect(large.body.success).to.equal(false);
      });

      it('answers a deeply nested body with 400 instead of recursing', async () => {
        const deep = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
        const res = await catalog.api.post('/container_registry', undefined, {
          raw: deep,
          contentType: 'application/json',
        });
        expect(res.status).to.equal(400);
      });
    });

    describe('GET /container_registry/<id>', () => {
      it('answers 400 for a malformed id and 404 for an unknown one', async () => {
        expect((await catalog.api.get('/container_registry/not-a-uuid')).status).to.equal(400);
        const missing = await catalog.api.get('/container_registry/00000000-0000-4000-8000-000000000000');
        expect(missing.status).to.equal(404);
        expect(missing.body.error).to.match(/not found/);
        // Found by the HTTP fuzz: an undecodable path parameter was a 500.
        for (const path of [
          '/container_registry/%ff',
          '/container_registry/%',
          '/container_registry/%E0%A4%A',
        ]) {
          const bad = await catalog.api.get(path);
          expect(bad.status, path).to.equal(400);
          expect(bad.body.error).to.equal('The request path is not valid percent-encoding');
        }
      });

      it('answers 304 to If-None-Match with the current ETag', async () => {
        const created = await catalog.api.post('/container_registry', entry);
        const res = await catalog.api.get(`/container_registry/${ID}`, {
          headers: { 'If-None-Match': created.headers.etag as string },
        });
        expect(res.status).to.equal(304);
      });
    });

    describe('PUT /container_registry/<id>', () => {
      beforeEach(async () => {
        await catalog.api.post('/container_registry', entry);
      });
      const put = (body: unknown, headers?: Record<string, string>) =>
        catalog.api.put(`/container_registry/${ID}`, body, { headers });
      const current = async () => (await catalog.api.get(`/container_registry/${ID}`)).body.data;

      it('treats a plain partial object as $set', async () => {
        const res = await put({ container_registry_name: 'plain', container_registry_tags: ['x'] });
        expect(res.status).to.equal(200);
        expect(await current()).to.deep.include({
          container_registry_name: 'plain',
          container_registry_tags: ['x'],
        });
      });

      it('applies dotted paths, $unset, $push, $addToSet and $pull', async () => {
        expect(
          (
            await put({
              $set: {
                'container_registry_metadata.owner': 'platform',
                'container_registry_metadata.team.lead': 'ana',
              },
            })
          ).status,
        ).to.equal(200);
        expect((await put({ $unset: { 'container_registry_metadata.region': '' } })).status).to.equal(200);
        expect((await put({ $push: { container_registry_tags: 'gpu' } })).status).to.equal(200);
        expect(
          (await put({ $addToSet: { container_registry_tags: { $each: ['ai', 'cpu'] } } })).status,
        ).to.equal(200);
        expect(
          (await put({ $pull: { container_registry_tags: { $in: ['training', 'fast-pull'] } } })).status,
        ).to.equal(200);
        const doc = await current();
        expect(doc.container_registry_metadata).to.deep.equal({
          environment: 'production',
          owner: 'platform',
          team: { lead: 'ana' },
        });
        expect(doc.container_registry_tags).to.deep.equal(['ai', 'internal', 'gpu', 'cpu']);
      });

      it('answers a no-op update with 200 and the same ETag', async () => {
        const before = await catalog.api.get(`/container_registry/${ID}`);
        const res = await put({ $set: { container_registry_name: 'internal-ai-registry' } });
        expect(res.status).to.equal(200);
        expect(res.headers.etag).to.equal(before.headers.etag);
      });

      const refused: Array<[string, unknown, RegExp]> = [
        ['an operator that is not allowed', { $rename: { container_registry_name: 'x' } }, /\$rename/],
        [
          'a change of the id',
          { $set: { container_registry_id: '00000000-0000-4000-8000-000000000000' } },
          /immutable/,
        ],
        ['a field that does not exist', { $set: { owner: 'x' } }, /owner/],
        ['a dotted path into a string field', { $set: { 'container_registry_name.x': 1 } }, /dotted path/],
        [
          'a result that breaks the schema',
          { $set: { container_registry_tags: 'not-a-list' } },
          /container_registry_tags/,
        ],
        ['$push to an object field', { $push: { container_registry_metadata: 1 } }, /array/],
        [
          '$push to a string inside metadata',
          { $push: { 'container_registry_metadata.owner': 1 } },
          /owner|array/,
        ],
        [
          'mixed operators and fields',
          { $set: { container_registry_name: 'x' }, container_registry_tags: [] },
          /mixes/,
        ],
        [
          'conflicting paths',
          { $set: { 'container_registry_metadata.a': 1 }, $unset: { container_registry_metadata: '' } },
          /conflict/,
        ],
        ['an operator inside a value', { $set: { container_registry_metadata: { $gt: 1 } } }, /\$gt/],
        ['a body that is not an object', [1, 2], /object/],
        ['an empty object', {}, /^Invalid update: the body is empty;/],
        ['an empty body', undefined, /^Invalid update: the body is empty;/],
        ['removing a required field', { $unset: { container_registry_name: '' } }, /container_registry_name/],
      ];
      for (const [what, body, message] of refused) {
        it(`refuses ${what} with 400 and changes nothing`, async () => {
          const before = await current();
          const res = await put(body);
          expect(res.status).to.equal(400);
          expect(res.body.error).to.match(message);
          expect(await current()).to.deep.equal(before);
        });
      }

      it('refuses an empty JSON body (Content-Type set, no bytes) with 400', async () => {
        const before = await current();
        const res = await catalog.api.put(`/container_registry/${ID}`, undefined, {
          raw: '',
          contentType: 'application/json',
        });
        expect(res.status).to.equal(400);
        expect(res.body.error).to.match(/^Invalid update: the body is empty;/);
        expect(await current()).to.deep.equal(before);
      });

      it('answers 404 for an unknown id and creates nothing', async () => {
        const other = '11111111-1111-4111-8111-111111111111';
        const res = await catalog.api.put(`/container_registry/${other}`, {
          $set: { container_registry_name: 'x' },
        });
        expect(res.status).to.equal(404);
        expect((await catalog.api.get(`/container_registry/${other}`)).status).to.equal(404);
      });

      it('honours If-Match: 412 on a stale ETag, 200 on the current one', async () => {
        const { headers } = await catalog.api.get(`/container_registry/${ID}`);
        await put({ $set: { container_registry_name: 'changed' } });
        const stale = await put(
          { $set: { container_registry_name: 'mine' } },
          { 'If-Match': headers.etag as string },
        );
        expect(stale.status).to.equal(412);
        const fresh = await catalog.api.get(`/container_registry/${ID}`);
        const ok = await put(
          { $set: { container_registry_name: 'mine' } },
          { 'If-Match': fresh.headers.etag as string },
        );
        expect(ok.status).to.equal(200);
      });

      // 32 clients at once, each with its own value, through $push, $addToSet and $set: every
      // one of the 96 updates is counted in the result, on both stores (on FerretDB too, whose
      // conditional replace alone is not atomic: see the version claims in store/mongo.ts).
      it('loses no update when 32 clients $push, $addToSet and $set at once', async () => {
        await put({ $set: { container_registry_tags: [], container_registry_metadata: {} } });
        const clients = Array.from({ length: 32 }, (_, i) => i);
        const results = await Promise.all(
          clients.flatMap((i) => [
            put({ $push: { container_registry_tags: `p${i}` } }),
            put({ $addToSet: { container_registry_tags: `a${i}` } }),
            put({ $set: { [`container_registry_metadata.c${i}`]: i } }),
          ]),
        );
        expect(results.map((r) => r.status)).to.deep.equal(Array(96).fill(200));
        const stored = await current();
        const tags = stored.container_registry_tags as string[];
        expect(tags).to.have.length(64);
        expect([...tags].sort()).to.deep.equal(clients.flatMap((i) => [`p${i}`, `a${i}`]).sort());
        expect(stored.container_registry_metadata).to.deep.equal(
          Object.fromEntries(clients.map((i) => [`c${i}`, i])),
        );
      });

      it('loses no update when 32 clients push one after another with stale reads in between', async () => {
        await put({ $set: { container_registry_tags: [] } });
        for (let i = 0; i < 32; i++) {
          const stale = await catalog.store.get(ID);
          await put({ $push: { container_registry_tags: `s${i}` } });
          // A write based on the stale version must be refused by the store.
          const attempt = await catalog.store.replaceIfVersion(stale!.document, stale!.version);
          expect(attempt.status).to.equal('conflict');
        }
        expect(((await current()).container_registry_tags as string[]).length).to.equal(32);
      });
    });

    describe('credentials are write-only', () => {
      const withCredentials = {
        ...entry,
        container_registry_config: { credentials: { username: 'robot', password: 's3cret' } },
      };

      it('never returns them, keeps them when the mask is written back, and drops them when the URL changes', async () => {
        const created = await catalog.api.post('/container_registry', withCredentials);
        expect(created.text).to.not.include('s3cret');
        expect(created.body.data.container_registry.container_registry_config.credentials).to.deep.equal({
          username: '*****',
          password: '*****',
        });
        const read = await catalog.api.get(`/container_registry/${ID}`);
        expect(read.text).to.not.include('s3cret');
        const listed = await catalog.api.post('/container_registries', {});
        expect(listed.text).to.not.include('s3cret');

        // At rest the secrets are sealed with the configured key.
        const sealed = (await catalog.store.get(ID))!.document.container_registry_config
          .credentials as Record<string, string>;
        expect(sealed.password).to.match(/^aes256gcm:test:/);
        expect(JSON.stringify(sealed)).to.not.include('s3cret');
        expect(TEST_CIPHER.open(sealed.password!, ID, 'password')).to.equal('s3cret');

        // Writing back what was read keeps the stored secret.
        await catalog.api.put(`/container_registry/${ID}`, {
          $set: { container_registry_config: read.body.data.container_registry_config },
        });
        expect((await catalog.store.get(ID))!.document.container_registry_config.credentials).to.deep.equal(
          sealed,
        );

        // A new password is sealed anew.
        await catalog.api.put(`/container_registry/${ID}`, {
          $set: { 'container_registry_config.credentials.password': 'n3w' },
        });
        const resealed = (await catalog.store.get(ID))!.document.container_registry_config
          .credentials as Record<string, string>;
        expect(TEST_CIPHER.open(resealed.password!, ID, 'password')).to.equal('n3w');
        expect(resealed.username).to.equal(sealed.username);

        await catalog.api.put(`/container_registry/${ID}`, {
          $set: { container_registry_public_url: 'https://elsewhere.example.test' },
        });
        expect((await catalog.store.get(ID))?.document.container_registry_config).to.not.have.property(
          'credentials',
        );
      });

      it('are refused, not stored in clear, when no key is configured', async () => {
        const keyless = await startCatalog(kind, { cipher: undefined });
        try {
          const res = await keyless.api.post('/container_registry', withCredentials);
          expect(res.status).to.equal(422);
          expect(res.body.error).to.include('CREDENTIALS_KEYS');
          expect((await keyless.api.get(`/container_registry/${ID}`)).status).to.equal(404);
        } finally {
          await keyless.stop();
        }
      });

      it('refuse a sealed value sent by a client', async () => {
        const res = await catalog.api.post('/container_registry', {
          ...entry,
          container_registry_config: { credentials: { password: 'aes256gcm:test:a:b:c' } },
        });
        expect(res.status).to.equal(400);
      });

      it('cannot be queried or sorted on', async () => {
        await catalog.api.post('/container_registry', withCredentials);
        const byFilter = await catalog.api.post('/container_registries', {
          'container_registry_config.credentials.password': { $regex: '^s' },
        });
        expect(byFilter.status).to.equal(400);
        const bySort = await catalog.api.post(
          '/container_registries?sort=container_registry_config.credentials.password',
          {},
        );
        expect(bySort.status).to.equal(400);
      });
    });

    describe('POST /container_registries', () => {
      beforeEach(async () => {
        for (let i = 0; i < 25; i++) {
          await catalog.api.post(
            '/container_registry',
            registry({
              container_registry_name: `reg-${String(i).padStart(2, '0')}`,
              container_registry_tags: i % 2 === 0 ? ['even'] : ['odd'],
              container_registry_metadata: { index: i, env: i < 5 ? 'prod' : 'dev' },
            }),
          );
        }
      });

      it('lists everything for an empty body or {}', async () => {
        const empty = await catalog.api.post('/container_registries');
        expect(empty.status).to.equal(200);
        expect(empty.body.data).to.have.length(25);
        expect((await catalog.api.post('/container_registries', {})).body.data).to.have.length(25);
      });

      it('pages with limit, skip, X-Total-Count and a Link to the next page', async () => {
        const first = await catalog.api.post(
          '/container_registries?limit=10&sort=container_registry_name',
          {},
        );
        expect(
          first.body.data.map((d: { container_registry_name: string }) => d.container_registry_name),
        ).to.deep.equal(Array.from({ length: 10 }, (_, i) => `reg-${String(i).padStart(2, '0')}`));
        expect(first.headers['x-total-count']).to.equal('25');
        expect(first.headers.link).to.equal(
          '</container_registries?limit=10&sort=container_registry_name&skip=10>; rel="next"',
        );
        const last = await catalog.api.post(
          '/container_registries?limit=10&skip=20&sort=-container_registry_name',
          {},
        );
        expect(
          last.body.data.map((d: { container_registry_name: string }) => d.container_registry_name),
        ).to.deep.equal(['reg-04', 'reg-03', 'reg-02', 'reg-01', 'reg-00']);
        expect(last.headers.link).to.equal(undefined);
      });

      it('filters with operators on nested paths', async () => {
        const res = await catalog.api.post('/container_registries', {
          $and: [
            { container_registry_tags: 'even' },
            { 'container_registry_metadata.index': { $gte: 10, $lt: 20 } },
          ],
        });
        expect(
          res.body.data
            .map(
              (d: { container_registry_metadata: { index: number } }) => d.container_registry_metadata.index,
            )
            .sort((a: number, b: number) => a - b),
        ).to.deep.equal([10, 12, 14, 16, 18]);
        const regex = await catalog.api.post('/container_registries', {
          container_registry_name: { $regex: '^REG-0[0-2]$', $options: 'i' },
        });
        expect(regex.body.data).to.have.length(3);
      });

      const refused: Array<[string, unknown, RegExp]> = [
        ['$where', { $where: 'sleep(1000)' }, /\$where/],
        ['$expr', { $expr: { $gt: ['$a', 1] } }, /\$expr/],
        ['$function inside a field', { container_registry_name: { $function: {} } }, /\$function/],
        ['an unknown field', { owner: 'x' }, /owner/],
        ['an empty $or', { $or: [] }, /\$or/],
        [
          'a huge $in',
          { container_registry_tags: { $in: Array.from({ length: 1001 }, (_, i) => `t${i}`) } },
          /\$in/,
        ],
        ['a long regex', { container_registry_name: { $regex: 'a'.repeat(300) } }, /\$regex/],
        ['a catastrophic regex', { container_registry_name: { $regex: '(a+)+$' } }, /nested quantifiers/],
        ['deep nesting', nest(12), /deeper/],
        ['an array body', [], /object/],
      ];
      for (const [what, body, message] of refused) {
        it(`refuses ${what} with 400 naming it`, async () => {
          const res = await catalog.api.post('/container_registries', body);
          expect(res.status).to.equal(400);
          expect(res.body.error).to.match(message);
        });
      }

      it('keeps the JSON pointer apart from the message in the error sentence', async () => {
        const res = await catalog.api.post('/container_registries', { $where: 'sleep(1000)' });
        expect(res.status).to.equal(400);
        expect(res.body.error).to.match(
          /^Invalid filter at \/\$where: operator \$where is not allowed \(allowed: /,
        );
        expect(res.body.errors[0].pointer).to.equal('/$where');
        expect(res.body.errors[0].message).to.match(/^operator \$where is not allowed/);
      });

      it('refuses bad paging parameters with 400', async () => {
        for (const query of [
          'limit=0',
          'limit=1001',
          'limit=abc',
          'skip=-1',
          'sort=owner',
          'sort=a,b,c,d,e',
        ]) {
          expect((await catalog.api.post(`/container_registries?${query}`, {})).status, query).to.equal(400);
        }
      });
    });

    describe('operations endpoints', () => {
      it('serves /healthz, /readyz, /metrics, /openapi.json and /docs', async () => {
        expect((await catalog.api.get('/healthz')).body).to.deep.equal({
          success: true,
          data: { status: 'ok' },
        });
        expect((await catalog.api.get('/readyz')).status).to.equal(200);
        await catalog.api.get('/healthz');
        const metrics = await catalog.api.get('/metrics');
        expect(metrics.text).to.match(
          /catalog_http_requests_total\{method="GET",route="\/healthz",status="200"\} \d+/,
        );
        const openapi = await catalog.api.get('/openapi.json');
        expect(openapi.body.openapi).to.equal('3.1.0');
        const docs = await request(catalog.api.handler).get('/docs/');
        expect(docs.status).to.equal(200);
        expect(docs.text).to.include('swagger-ui');
      });

      it('answers plain reads on the fast path exactly as the Express route does', async () => {
        await catalog.api.post('/container_registry', entry);
        const fast = await catalog.api.get(`/container_registry/${ID}`, {
          headers: { 'X-Request-Id': 'fast-1' },
        });
        const routed = await request(catalog.catalog.app)
          .get(`/container_registry/${ID}`)
          .set('X-Request-Id', 'fast-1');
        expect(fast.status).to.equal(200);
        expect(fast.body).to.deep.equal(routed.body);
        for (const header of ['etag', 'content-type', 'content-length', 'x-request-id']) {
          expect(fast.headers[header], header).to.equal(routed.headers[header]);
        }
        const metrics = await catalog.api.get('/metrics');
        expect(metrics.text).to.match(
          /catalog_http_requests_total\{method="GET",route="\/container_registry\/:registry_id",status="200"\} 2/,
        );
      });

      it('answers a known path with another method with 405 and Allow', async () => {
        const res = await catalog.api.call('PATCH', `/container_registry/${ID}`, {});
        expect(res.status).to.equal(405);
        expect(res.headers.allow).to.equal('GET, HEAD, PUT, DELETE');
        expect(res.body.success).to.equal(false);
      });

      it('answers unknown routes with a 404 envelope', async () => {
        const res = await catalog.api.get('/nope');
        expect(res.status).to.equal(404);
        expect(res.body.success).to.equal(false);
      });
    });
  });
}

function nest(levels: number): Record<string, unknown> {
  let filter: Record<string, unknown> = { container_registry_name: 'x' };
  for (let i = 0; i < levels; i++) filter = { $and: [filter] };
  return filter;
}
