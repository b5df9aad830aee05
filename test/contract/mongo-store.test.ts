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
