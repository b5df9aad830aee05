import { openTestStore } from '../helpers/catalog.js';
import { getMongoUri, usingFerretDb } from '../helpers/mongo-server.js';
import { startMongoWireProxy } from '../helpers/mongo-wire-proxy.js';
import { expect } from 'chai';
import { MongoDatabase } from '../../src/catalog/store/mongo-collection.js';
import { openRegistryStore } from '../../src/catalog/store/registry-store.js';
import { openMongoTestStore } from '../helpers/catalog.js';
import { describeRegistryStoreContract, registry } from './registry-store.contract.js';

// On a real MongoDB (MONGODB_URI set) the whole contract holds. FerretDB 1.24 differs where the
// entries below say; README "Testing against MongoDB and FerretDB" lists the same differences.
// Both replace paths run: the one the server gets by default (auto: version claims on FerretDB,
// the atomic conditional replace on MongoDB), and the atomic one forced.
const ferret = usingFerretDb();
const server = ferret ? 'FerretDB 1.24' : 'MongoDB';
const filterDifferences: Record<string, string> = ferret
  ? { '$elemMatch on subdocuments': 'unknown operator: name' }
  : {};
describeRegistryStoreContract(
  `MongoStore on ${server} (replace mode auto: ${ferret ? 'claim' : 'atomic'})`,
  () => openTestStore('mongo'),
  { knownFilterDifferences: filterDifferences },
);
describeRegistryStoreContract(
  `MongoStore on ${server} (replace mode atomic)`,
  () => openTestStore('mongo', 'atomic'),
  {
    knownFilterDifferences: filterDifferences,
    ...(ferret
      ? { losesConcurrentUpdates: "FerretDB's conditional replace queries, then writes by _id" }
      : {}),
  },
);

describe('MongoStore replace mode', () => {
  it(`auto picks ${ferret ? 'version claims on FerretDB' : 'the atomic replace on MongoDB'}; atomic writes no claims`, async () => {
    const auto = await openTestStore('mongo');
    const atomic = await openTestStore('mongo', 'atomic');
    try {
      expect((auto.database as MongoDatabase).replaceMode).to.equal(ferret ? 'claim' : 'atomic');
      expect((atomic.database as MongoDatabase).replaceMode).to.equal('atomic');
      const doc = registry(9_002);
      await atomic.store.create(doc);
      const renamed = { ...doc, container_registry_name: 'renamed' };
      expect((await atomic.store.replaceIfVersion(renamed, 1)).status).to.equal('replaced');
      const names = await (atomic.database as MongoDatabase).db.listCollections().toArray();
      expect(names.map((c) => c.name)).to.not.include('container_registry_version_claims');
    } finally {
      await auto.cleanup();
      await atomic.cleanup();
    }
  });
});

describe('MongoStore start-up', () => {
  it('opens twice on the same database (indexes are created once, as a second replica does)', async () => {
    const first = await openTestStore('mongo');
    const second = await openMongoTestStore((first.database as MongoDatabase).db.databaseName);
    try {
      await second.store.ping();
    } finally {
      await second.store.close();
      await first.cleanup();
    }
  });
});

describe('MongoStore version claims', () => {
  it('refuses a version another writer holds, and overtakes a claim left by a dead writer', async () => {
    const opened = await openTestStore('mongo', 'claim');
    const mongo = opened.store;
    try {
      const doc = registry(9_001);
      await mongo.create(doc);
      const claims = (opened.database as MongoDatabase).db.collection<{ _id: string; at: Date }>(
        'container_registry_version_claims',
      );
      const renamed = { ...doc, container_registry_name: 'renamed' };

      await claims.insertOne({ _id: `${doc.container_registry_id}@2`, at: new Date() });
      expect((await mongo.replaceIfVersion(renamed, 1)).status).to.equal('conflict');
      expect((await mongo.get(doc.container_registry_id))!.version).to.equal(1);

      await claims.updateOne(
        { _id: `${doc.container_registry_id}@2` },
        { $set: { at: new Date(Date.now() - 60_000) } },
      );
      expect((await mongo.replaceIfVersion(renamed, 1)).status).to.equal('replaced');
      expect((await mongo.get(doc.container_registry_id))!.document.container_registry_name).to.equal(
        'renamed',
      );
      // Kept a while past the write (stale writers of version 1 are refused meanwhile), then released.
      expect((await mongo.replaceIfVersion(renamed, 1)).status).to.equal('conflict');
      const released = Date.now() + 10_000;
      while ((await claims.countDocuments({})) > 0 && Date.now() < released)
        await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await claims.countDocuments({})).to.equal(0);
    } finally {
      await opened.cleanup();
    }
  });

  it('two replicas, 16 writers each, pushing to one entry: no update is lost', async () => {
    const first = await openTestStore('mongo', 'claim');
    const second = await openMongoTestStore((first.database as MongoDatabase).db.databaseName, 'claim');
    try {
      const doc = registry(9_002);
      await first.store.create(doc);
      const id = doc.container_registry_id;
      const writers = [first.store, second.store].flatMap((store, replica) =>
        Array.from({ length: 16 }, (_, i) => ({ store, tag: `r${replica}w${i}` })),
      );
      await Promise.all(
        writers.map(async ({ store, tag }) => {
          for (;;) {
            const current = (await store.get(id))!;
            const next = {
              ...current.document,
              container_registry_tags: [...current.document.container_registry_tags, tag],
            };
            const result = await store.replaceIfVersion(next, current.version);
            if (result.status === 'replaced') return;
            expect(result.status).to.equal('conflict');
            await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
          }
        }),
      );
      const final = (await second.store.get(id))!;
      expect([...final.document.container_registry_tags].sort()).to.deep.equal(
        [...doc.container_registry_tags, ...writers.map((writer) => writer.tag)].sort(),
      );
      expect(final.version).to.equal(writers.length + 1);
    } finally {
      await second.store.close();
      await first.cleanup();
    }
  });

  it('updates an entry deleted and re-created at once, though the old claims are still kept', async () => {
    const opened = await openTestStore('mongo', 'claim');
    try {
      const doc = registry(9_003);
      await opened.store.create(doc);
      await opened.store.replaceIfVersion({ ...doc, container_registry_name: 'first life' }, 1);
      await opened.store.delete(doc.container_registry_id);
      await opened.store.create(doc);
      const result = await opened.store.replaceIfVersion(
        { ...doc, container_registry_name: 'second life' },
        1,
      );
      expect(result.status).to.equal('replaced');
      expect((await opened.store.get(doc.container_registry_id))!.document.container_registry_name).to.equal(
        'second life',
      );
    } finally {
      await opened.cleanup();
    }
  });
});

describe('MongoStore on FerretDB: scans wait their turn', () => {
  it('16 $in queries at once reach FerretDB at most 2 at a time, and all answer', async function () {
    if (!ferret) this.skip(); // MongoDB answers these from its indexes: nothing is held back there
    const proxy = await startMongoWireProxy(await getMongoUri());
    const mongo = await MongoDatabase.connect({ uri: proxy.uri, database: `test_scans_${Date.now()}` });
    try {
      const store = await openRegistryStore(mongo, 'container_registry');
      await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          store.create(registry(20_000 + i, { container_registry_tags: [i % 3 === 0 ? 'common' : 'rare'] })),
        ),
      );
      const filter = { container_registry_tags: { $in: ['common', 'team-a'] } };
      const pages = await Promise.all(
        Array.from({ length: 16 }, () => store.findPage(filter, { sort: [], skip: 0, limit: 10 })),
      );
      expect(pages.map((page) => page.total)).to.deep.equal(Array(16).fill(67));
      expect(proxy.counts.get('find')).to.be.at.least(16);
      expect(proxy.maxInFlight.get('find')).to.be.at.most(2);
    } finally {
      await mongo.dropDatabase();
      await mongo.close();
      await proxy.close();
    }
  });
});
