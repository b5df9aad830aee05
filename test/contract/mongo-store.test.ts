import { openTestStore } from '../helpers/catalog.js';
import { usingFerretDb } from '../helpers/mongo-server.js';
import { expect } from 'chai';
import type { MongoDatabase } from '../../src/catalog/store/mongo-collection.js';
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
      expect(await claims.countDocuments({})).to.equal(0); // released after the write
    } finally {
      await opened.cleanup();
    }
  });
});
