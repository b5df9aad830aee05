import type { CatalogConfig } from '../shared/config/catalog.js';
import type { Logger } from '../shared/logger.js';
import { EmbeddedStore } from './store/embedded.js';
import { MongoStore } from './store/mongo.js';
import type { RegistryStore } from './store/registry-store.js';

/** MongoDB when `MONGODB_URI` is set, otherwise the embedded store under `DATA_DIR`. */
export async function openStore(config: CatalogConfig, logger: Logger): Promise<RegistryStore> {
  if (config.mongodbUri !== undefined) {
    const store = await MongoStore.connect({
      uri: config.mongodbUri,
      database: config.mongodbDatabase,
      collection: config.mongodbCollection,
    });
    logger.info(
      { database: config.mongodbDatabase, collection: config.mongodbCollection },
      'using MongoDB store',
    );
    return store;
  }
  const store = await EmbeddedStore.open(config.dataDir);
  logger.info({ dataDir: config.dataDir }, 'using embedded store');
  return store;
}
