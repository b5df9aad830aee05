import { openTestStore } from '../helpers/catalog.js';
import { usingFerretDb } from '../helpers/mongo-server.js';
import { describeRegistryStoreContract } from './registry-store.contract.js';

// On a real MongoDB (MONGODB_URI set) the whole contract holds. FerretDB 1.24 differs where the
// entries below say; README "Testing against MongoDB and FerretDB" lists the same differences.
describeRegistryStoreContract(
  usingFerretDb() ? 'MongoStore on FerretDB 1.24' : 'MongoStore on MongoDB',
  () => openTestStore('mongo'),
  usingFerretDb()
    ? {
        concurrentCasNotAtomic: true,
        knownFilterDifferences: { '$elemMatch on subdocuments': 'unknown operator: name' },
      }
    : {},
);

describe('MongoStore start-up', () => {
  it('opens twice on the same database (indexes are created once, as a second replica does)', async () => {
    const first = await openTestStore('mongo');
    const { MongoStore } = await import('../../src/catalog/store/mongo.js');
    const { getMongoUri } = await import('../helpers/mongo-server.js');
    const mongo = first.store as import('../../src/catalog/store/mongo.js').MongoStore;
    const second = await MongoStore.connect({ uri: await getMongoUri(), database: mongo.db.databaseName });
    try {
      await second.ping();
    } finally {
      await second.close();
      await first.cleanup();
    }
  });
});
