import type { CatalogConfig } from '../config.js';
import type { Logger } from '../../shared/logger.js';
import type { DocumentDatabase } from './collection.js';
import { EmbeddedDatabase } from './embedded-collection.js';
import { EventStore } from './event-store.js';
import { HealthStore } from './health-store.js';
import { ImageStore } from './image-store.js';
import { HeartbeatStore } from './heartbeat-store.js';
import { MongoDatabase } from './mongo-collection.js';
import { DEFAULT_SCAN_BUDGET } from './scan-budget.js';
import { openRegistryStore, type RegistryStore } from './registry-store.js';

export interface OpenedStores {
  readonly database: DocumentDatabase;
  readonly store: RegistryStore;
  readonly healthStore: HealthStore;
  readonly imageStore: ImageStore;
  readonly heartbeatStore: HeartbeatStore;
  /** The event outbox and webhook subscriptions. */
  readonly eventStore: EventStore;
}

/**
 * MongoDB when `MONGODB_URI` is set, otherwise the embedded store under `DATA_DIR`. On MongoDB
 * the registries are the collection `MONGODB_COLLECTION` and every other collection is named
 * after it (`<collection>_health_statuses`, ...); in SQLite they are tables of one file.
 */
export async function openStores(config: CatalogConfig, logger: Logger): Promise<OpenedStores> {
  if (config.mongodbUri !== undefined) {
    const database = await MongoDatabase.connect({
      uri: config.mongodbUri,
      database: config.mongodbDatabase,
      maxTimeMs: config.queryMaxTimeMs,
    });
    logger.info(
      { database: config.mongodbDatabase, collection: config.mongodbCollection },
      'using MongoDB store',
    );
    return openRepositories(database, config.mongodbCollection, `${config.mongodbCollection}_`);
  }
  const database = await EmbeddedDatabase.open(config.dataDir, {
    ...DEFAULT_SCAN_BUDGET,
    maxTimeMs: config.queryMaxTimeMs,
  });
  logger.info(
    { dataDir: config.dataDir, quickCheckMs: Math.round(database.quickCheckMs) },
    'using embedded store',
  );
  return openRepositories(database, 'registries', '');
}

/** The repositories on an open database; closes it when one cannot be opened. */
export async function openRepositories(
  database: DocumentDatabase,
  registries: string,
  prefix: string,
): Promise<OpenedStores> {
  try {
    const store = await openRegistryStore(database, registries);
    return {
      database,
      store,
      healthStore: await HealthStore.open(database, prefix),
      imageStore: await ImageStore.open(database, prefix),
      heartbeatStore: await HeartbeatStore.open(database, prefix),
      eventStore: await EventStore.open(database, prefix),
    };
  } catch (error) {
    await database.close();
    throw error;
  }
}
