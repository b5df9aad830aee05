import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { QueryTimeoutError } from '../../src/catalog/store/collection.js';
import { MongoDatabase } from '../../src/catalog/store/mongo-collection.js';
import { openRegistryStore, type RegistryStore } from '../../src/catalog/store/registry-store.js';
import { getMongoUri } from '../helpers/mongo-server.js';

/** The MongoDB backend sends `maxTimeMS` with every query and count, and the server's timeout is a QueryTimeoutError (503). */
describe('MongoDB backend maxTimeMS', function () {
  this.timeout(120_000);
  let mongo: MongoDatabase;
  let store: RegistryStore;
  before(async () => {
    mongo = await MongoDatabase.connect({
      uri: await getMongoUri(),
      database: `test_${randomUUID().replace(/-/g, '').slice(0, 16)}`,
      maxTimeMs: 1,
    });
    store = await openRegistryStore(mongo, 'container_registry');
    const value = 'a'.repeat(20_000);
    for (let batch = 0; batch < 10; batch++)
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          store.create({
            container_registry_id: randomUUID(),
            container_registry_name: `r-${batch}-${i}`,
            container_registry_metadata: { blob: value },
            container_registry_tags: [],
            container_registry_public_url: 'http://registry.example.test:5000',
            container_registry_image_prefix: '',
            container_registry_config: {},
            container_registry_storage_info: {},
          }),
        ),
      );
  });
  after(async () => {
    await mongo.dropDatabase();
    await mongo.close();
  });

  it('stops a slow find and a slow count at maxTimeMS with QueryTimeoutError', async () => {
    const filter = { 'container_registry_metadata.blob': { $regex: 'a*a*a*b' } };
    const find = await store.find(filter, { sort: [], skip: 0, limit: 10 }).then(
      () => 'finished',
      (error: unknown) => error,
    );
    expect(find).to.be.instanceOf(QueryTimeoutError);
    const count = await store.count(filter).then(
      () => 'finished',
      (error: unknown) => error,
    );
    expect(count).to.be.instanceOf(QueryTimeoutError);
  });
});
