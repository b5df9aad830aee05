import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { createCatalogApp } from '../../src/catalog/app.js';
import { CredentialCipher } from '../../src/catalog/domain/credential-cipher.js';
import { EmbeddedStore } from '../../src/catalog/store/embedded.js';
import { MongoStore } from '../../src/catalog/store/mongo.js';
import type { RegistryStore } from '../../src/catalog/store/registry-store.js';
import { createLogger } from '../../src/shared/logger.js';
import { SchemaSet } from '../../src/shared/schemas.js';
import { ApiClient } from './api-client.js';
import { getMongoUri } from './mongo-server.js';
import { OpenApiValidator } from './openapi-validator.js';

export const STORE_KINDS = ['embedded', 'mongo'] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

export interface TestStore {
  readonly store: RegistryStore;
  cleanup(): Promise<void>;
}

/** A fresh, empty store of the given kind: a temp dir, or a new database on the test MongoDB/FerretDB. */
export async function openTestStore(kind: StoreKind): Promise<TestStore> {
  if (kind === 'embedded') {
    const dir = await mkdtemp(path.join(tmpdir(), 'catalog-embedded-'));
    const store = await EmbeddedStore.open(dir);
    return {
      store,
      cleanup: async () => {
        await store.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  const database = `test_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const store = await MongoStore.connect({
    uri: await getMongoUri(),
    database,
    collection: 'container_registry',
  });
  return {
    store,
    cleanup: async () => {
      await store.dropDatabase();
      await store.close();
    },
  };
}

let schemas: SchemaSet | undefined;
let validator: OpenApiValidator | undefined;

export interface TestCatalog {
  readonly api: ApiClient;
  readonly store: RegistryStore;
  stop(): Promise<void>;
}

/** A credentials key made for the test run. */
export const TEST_CIPHER = new CredentialCipher([{ id: 'test', key: randomBytes(32) }]);

/**
 * The catalog app in-process on a fresh store; every response is checked against openapi.yaml.
 * Credentials are sealed with `TEST_CIPHER` unless `cipher: undefined` is passed.
 */
export async function startCatalog(
  kind: StoreKind,
  options: { cipher?: CredentialCipher } = { cipher: TEST_CIPHER },
): Promise<TestCatalog> {
  schemas ??= new SchemaSet();
  validator ??= new OpenApiValidator(schemas);
  const { store, cleanup } = await openTestStore(kind);
  const app = createCatalogApp({
    store,
    schemas,
    logger: createLogger('test', 'silent'),
    bodyLimitBytes: 1024 * 1024,
    cipher: options.cipher,
  });
  return { api: new ApiClient(app, validator), store, stop: cleanup };
}
