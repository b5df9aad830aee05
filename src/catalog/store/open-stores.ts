import type { CatalogConfig } from '../config.js';
import type { Logger } from '../../shared/logger.js';
import { EmbeddedHealthStore } from './embedded-health.js';
import { EmbeddedStore } from './embedded.js';
import type { HealthStore } from './health-store.js';
import { MongoHealthStore } from './mongo-health.js';
import { MongoStore } from './mongo.js';
import type { RegistryStore } from './registry-store.js';

export interface OpenedStores {
  readonly store: RegistryStore;
  readonly healthStore: HealthStore;
}

/** MongoDB when `MONGODB_URI` is set, otherwise the embedded store under `DATA_DIR`. */
export async function openStores(config: CatalogConfig, logger: Logger): Promise<OpenedStores> {
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
    return { store, healthStore: await MongoHealthStore.open(store.db, config.mongodbCollection) };
  }
  const store = await EmbeddedStore.open(config.dataDir);
  logger.info({ dataDir: config.dataDir }, 'using embedded store');
  return { store, healthStore: new EmbeddedHealthStore(store.db) };
}
