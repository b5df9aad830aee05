import type { CatalogConfig } from '../shared/config/catalog.js';
import type { Logger } from '../shared/logger.js';
import { EmbeddedHealthStore } from './store/embedded-health.js';
import { EmbeddedStore } from './store/embedded.js';
import { DEFAULT_SCAN_BUDGET } from './store/scan-budget.js';
import type { HealthStore } from './store/health-store.js';
import { MongoHealthStore } from './store/mongo-health.js';
import { MongoStore } from './store/mongo.js';
import type { RegistryStore } from './store/registry-store.js';

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
      maxTimeMs: config.queryMaxTimeMs,
    });
    logger.info(
      { database: config.mongodbDatabase, collection: config.mongodbCollection },
      'using MongoDB store',
    );
    return { store, healthStore: await MongoHealthStore.open(store.db, config.mongodbCollection) };
  }
  const store = await EmbeddedStore.open(config.dataDir, {
    ...DEFAULT_SCAN_BUDGET,
    maxTimeMs: config.queryMaxTimeMs,
  });
  logger.info(
    { dataDir: config.dataDir, quickCheckMs: Math.round(store.quickCheckMs) },
    'using embedded store',
  );
  return { store, healthStore: new EmbeddedHealthStore(store.db) };
}
