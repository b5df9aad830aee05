import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { MongoClient, ObjectId, type Db } from 'mongodb';
import request from 'supertest';
import { createCatalog } from '../../src/catalog/app.js';
import type { RegistryStore } from '../../src/catalog/store/registry-store.js';
import { createLogger } from '../../src/shared/logger.js';
import { SchemaSet } from '../../src/shared/schemas.js';
import { STORE_KINDS, openTestStore, startCatalog, type TestCatalog } from '../helpers/catalog.js';
import { getMongoUri } from '../helpers/mongo-server.js';
import type { ContainerRegistry } from '../../src/catalog/model.js';

/**
 * Drop-in for a running AIOS deployment (DESIGN 3-4): the catalog pointed at the original
 * service's MongoDB database reads and writes its documents, and the original reads ours.
 * Documents are written here exactly as the original writes them: `to_dict()`'s eight fields,
 * inserted with pymongo's `insert_one`, which gives an ObjectId `_id`.
 */
const COLLECTION = 'container_registry';
const EIGHT = [
  'container_registry_id',
  'container_registry_name',
  'container_registry_metadata',
  'container_registry_tags',
  'container_registry_public_url',
  'container_registry_image_prefix',
  'container_registry_config',
  'container_registry_storage_info',
];

/** What the original's `ContainerRegistry.to_dict()` returns. */
function originalDocument(n: number, tags: string[]): ContainerRegistry {
  return {
    container_registry_id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    container_registry_name: `aios-${n}`,
    container_registry_metadata: { owner: 'mlops-team' },
    container_registry_tags: tags,
    container_registry_public_url: `http://127.0.0.1:${5000 + n}`,
    container_registry_image_prefix: `127.0.0.1:${5000 + n}`,
    container_registry_config: { auth_required: false },
    container_registry_storage_info: { storage_type: 'fs' },
  };
}

describe('AIOS drop-in: the original service MongoDB layout', function () {
  let client: MongoClient;
  let db: Db;
  let name: string;
  let catalog: TestCatalog | undefined;
  beforeEach(async () => {
    client = await MongoClient.connect(await getMongoUri());
    name = `test_aios_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    db = client.db(name);
  });
  afterEach(async () => {
    if (catalog) await catalog.stop();
    else await db.dropDatabase();
    catalog = undefined;
    await client.close();
  });

  it("serves the original's documents: get, list, $in query, update, delete", async () => {
    const docs = [
      originalDocument(1, ['ai', 'gpu']),
      originalDocument(2, ['internal']),
      originalDocument(3, []),
    ];
    // pymongo's insert_one(to_dict()): the driver adds an ObjectId _id.
    for (const doc of docs) await db.collection(COLLECTION).insertOne({ ...doc });
    catalog = await startCatalog('mongo', { mongoDatabase: name });
    const { api } = catalog;
    const [first, second, third] = docs.map((doc) => doc.container_registry_id as string);

    const read = await api.get(`/container_registry/${first}`);
    expect(read.status).to.equal(200);
    expect(read.body.data).to.deep.equal(docs[0]);

    const listed = await api.post('/container_registries', {});
    expect(listed.status).to.equal(200);
    expect(listed.body.data).to.deep.equal(docs);

    const found = await api.post('/container_registries', {
      container_registry_tags: { $in: ['gpu', 'internal'] },
    });
    expect(
      found.body.data.map((doc: { container_registry_id: string }) => doc.container_registry_id),
    ).to.deep.equal([first, second]);

    const updated = await api.put(`/container_registry/${second}`, {
      $set: { container_registry_name: 'renamed' },
    });
    expect(updated.status).to.equal(200);
    expect(updated.body.data.container_registry.container_registry_name).to.equal('renamed');
    const stored = await db.collection(COLLECTION).findOne({ container_registry_id: second });
    expect(stored!._id).to.be.instanceOf(ObjectId); // the original's _id is kept
    expect(stored!._version).to.equal(1); // gains our version on its first write
    const again = await api.put(`/container_registry/${second}`, { container_registry_tags: ['x'] });
    expect(again.status).to.equal(200);
    expect((await db.collection(COLLECTION).findOne({ container_registry_id: second }))!._version).to.equal(
      2,
    );

    expect((await api.delete(`/container_registry/${third}`)).status).to.equal(200);
    expect(await db.collection(COLLECTION).countDocuments({ container_registry_id: third })).to.equal(0);
    expect((await api.get(`/container_registry/${third}`)).status).to.equal(404);
  });

  it('writes documents the original reads: find_one({container_registry_id}) gives the eight fields', async () => {
    catalog = await startCatalog('mongo', { mongoDatabase: name });
    const doc = originalDocument(7, ['ai']);
    expect((await catalog.api.post('/container_registry', doc)).status).to.equal(201);
    const stored = await db
      .collection(COLLECTION)
      .findOne({ container_registry_id: doc.container_registry_id });
    expect(stored).to.not.equal(null);
    expect(stored!._id).to.be.instanceOf(ObjectId);
    expect(Object.keys(stored!).sort()).to.deep.equal(['_id', '_version', ...EIGHT].sort());
    const { _id, _version, ...fields } = stored!;
    void _id;
    expect(_version).to.equal(1);
    expect(fields).to.deep.equal(doc);
    // The id is unique under the index created at start, whoever writes.
    const indexes = await db.collection(COLLECTION).indexes();
    expect(indexes.find((index) => index.name === 'container_registry_id')).to.include({ unique: true });
    const error = await db
      .collection(COLLECTION)
      .insertOne({ ...doc })
      .catch((e: unknown) => e);
    expect(error).to.have.property('code', 11000);
  });

  it('follows an entry the original deleted and re-created (a new _id) behind our back', async () => {
    catalog = await startCatalog('mongo', { mongoDatabase: name });
    const doc = originalDocument(8, []);
    expect((await catalog.api.post('/container_registry', doc)).status).to.equal(201);
    expect((await catalog.api.get(`/container_registry/${doc.container_registry_id}`)).status).to.equal(200);
    await db.collection(COLLECTION).deleteOne({ container_registry_id: doc.container_registry_id });
    await db.collection(COLLECTION).insertOne({ ...doc, container_registry_name: 'recreated' });
    const read = await catalog.api.get(`/container_registry/${doc.container_registry_id}`);
    expect(read.body.data.container_registry_name).to.equal('recreated');
    const updated = await catalog.api.put(`/container_registry/${doc.container_registry_id}`, {
      container_registry_tags: ['again'],
    });
    expect(updated.status).to.equal(200);
    expect(
      (await db.collection(COLLECTION).findOne({ container_registry_id: doc.container_registry_id }))!
        .container_registry_tags,
    ).to.deep.equal(['again']);
    expect((await catalog.api.delete(`/container_registry/${doc.container_registry_id}`)).status).to.equal(
      200,
    );
    expect(await db.collection(COLLECTION).countDocuments({})).to.equal(0);
  });

  it('migrates entries written by earlier versions of ours (_id = id) at start, idempotently', async () => {
    const legacy = [originalDocument(4, ['old']), originalDocument(5, ['old'])].map(
      ({ container_registry_id, ...fields }) => ({
        _id: container_registry_id as string,
        ...fields,
        _version: 3,
      }),
    );
    await db.collection<{ _id: string }>(COLLECTION).insertMany(legacy);
    // Two replicas starting on the same database: both run the migration.
    const [one, two] = await Promise.all([
      startCatalog('mongo', { mongoDatabase: name }),
      startCatalog('mongo', { mongoDatabase: name }),
    ]);
    catalog = one;
    try {
      const id = legacy[0]!._id;
      const read = await one.api.get(`/container_registry/${id}`);
      expect(read.status).to.equal(200);
      expect(read.body.data.container_registry_id).to.equal(id);
      expect(read.body.data.container_registry_tags).to.deep.equal(['old']);
      expect(
        (await two.api.post('/container_registries', { container_registry_tags: 'old' })).body.data,
      ).to.have.length(2);
      expect(
        (await one.api.put(`/container_registry/${id}`, { container_registry_name: 'n' })).status,
      ).to.equal(200);
      const stored = await db.collection(COLLECTION).findOne({ container_registry_id: id });
      expect(stored).to.include({ container_registry_name: 'n', _version: 4 });
    } finally {
      await two.store.close();
    }
  });
});

for (const kind of STORE_KINDS) {
  describe(`AIOS drop-in: a query without limit/skip returns every match (${kind} store)`, () => {
    let catalog: TestCatalog;
    const COUNT = 250;
    before(async () => {
      catalog = await startCatalog(kind);
      await Promise.all(
        Array.from({ length: COUNT }, (_, i) =>
          catalog.store.create(originalDocument(i + 1, i % 5 < 3 ? ['common'] : ['rare'])),
        ),
      );
    });
    after(async () => {
      await catalog.stop();
    });
    const ids = (body: { data: Array<{ container_registry_id: string }> }) =>
      body.data.map((doc) => doc.container_registry_id);
    const expected = Array.from(
      { length: COUNT },
      (_, i) => originalDocument(i + 1, []).container_registry_id,
    );

    it('lists all 250 in id order, streamed, with X-Total-Count and no Link', async () => {
      const all = await catalog.api.post('/container_registries', {});
      expect(all.status).to.equal(200);
      expect(all.headers['x-total-count']).to.equal(String(COUNT));
      expect(all.headers.link).to.equal(undefined);
      expect(all.headers['transfer-encoding']).to.equal('chunked'); // written as read, not sized up front
      expect(all.body.success).to.equal(true);
      expect(ids(all.body)).to.deep.equal(expected);
      expect(all.body.data[0]).to.deep.equal(originalDocument(1, ['common']));
    });

    it('returns every match of a filter, in any sort order', async () => {
      const common = await catalog.api.post('/container_registries', { container_registry_tags: 'common' });
      expect(common.headers['x-total-count']).to.equal('150');
      expect(ids(common.body)).to.deep.equal(expected.filter((_, i) => i % 5 < 3));
      const backwards = await catalog.api.post('/container_registries?sort=-container_registry_id', {});
      expect(ids(backwards.body)).to.deep.equal([...expected].reverse());
      const byName = await catalog.api.post('/container_registries?sort=-container_registry_name', {
        container_registry_tags: { $in: ['rare'] },
      });
      const rare = expected.filter((_, i) => i % 5 >= 3);
      expect(byName.body.data).to.have.length(100);
      expect(
        byName.body.data.map((doc: { container_registry_name: string }) => doc.container_registry_name),
      ).to.deep.equal(
        rare
          .map((_, i) => `aios-${expected.indexOf(rare[i]!) + 1}`)
          .sort()
          .reverse(),
      );
    });

    it('pages as before when limit or skip is given', async () => {
      const page = await catalog.api.post('/container_registries?limit=10', {});
      expect(ids(page.body)).to.deep.equal(expected.slice(0, 10));
      expect(page.headers['x-total-count']).to.equal(String(COUNT));
      expect(page.headers.link).to.include('skip=10');
      const skipped = await catalog.api.post('/container_registries?skip=240', {});
      expect(ids(skipped.body)).to.deep.equal(expected.slice(240)); // skip alone: the default page of 100
      const invalid = await catalog.api.post('/container_registries', { $where: 'x' });
      expect(invalid.status).to.equal(400);
    });
  });
}

describe('AIOS drop-in: updates of one entry under contention (mongo store)', () => {
  it('serializes 16 concurrent updates of one id in the process: every one applied, no compare-and-swap retry', async () => {
    const opened = await openTestStore('mongo');
    let conflicts = 0;
    let replaces = 0;
    // A spy on the real store: counts the compare-and-swap outcomes, changes nothing.
    const store: RegistryStore = {
      ...opened.store,
      replaceIfVersion: async (document, version) => {
        replaces++;
        const result = await opened.store.replaceIfVersion(document, version);
        if (result.status === 'conflict') conflicts++;
        return result;
      },
    };
    const catalog = createCatalog({
      store,
      schemas: new SchemaSet(),
      logger: createLogger('test', 'silent'),
      bodyLimitBytes: 1 << 20,
    });
    try {
      const doc = originalDocument(42, []);
      await opened.store.create(doc);
      const id = doc.container_registry_id;
      const answers = await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          request(catalog.handler)
            .put(`/container_registry/${id}`)
            .send({ $push: { container_registry_tags: `t${i}` } }),
        ),
      );
      expect(answers.map((answer) => answer.status)).to.deep.equal(Array(16).fill(200));
      const stored = await opened.store.get(id);
      expect(stored!.version).to.equal(17);
      expect([...stored!.document.container_registry_tags].sort()).to.deep.equal(
        Array.from({ length: 16 }, (_, i) => `t${i}`).sort(),
      );
      expect({ replaces, conflicts }).to.deep.equal({ replaces: 16, conflicts: 0 });
    } finally {
      await opened.cleanup();
    }
  });
});
