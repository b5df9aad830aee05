import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { createCatalog, type AccessDeps, type Catalog } from '../../src/catalog/app.js';
import { AddressPolicy } from '../../src/catalog/health/address-policy.js';
import { createProber } from '../../src/catalog/health/probe.js';
import type { MonitorConfig } from '../../src/catalog/jobs/config.js';
import { HealthMonitor } from '../../src/catalog/jobs/monitor.js';
import type { Clock } from '../../src/shared/clock.js';
import type { ProbeTarget } from '../../src/catalog/model.js';
import type { HealthReport } from '../../src/catalog/model.js';
import { CredentialCipher } from '../../src/catalog/domain/credential-cipher.js';
import type { ReplaceMode } from '../../src/catalog/config.js';
import { EmbeddedDatabase } from '../../src/catalog/store/embedded-collection.js';
import type { HealthStore } from '../../src/catalog/store/health-store.js';
import type { ImageStore } from '../../src/catalog/store/image-store.js';
import type { CrawlFunction } from '../../src/catalog/domain/images.js';
import { createCrawler, type CrawlerLimits } from '../../src/catalog/health/crawl.js';
import { MongoDatabase } from '../../src/catalog/store/mongo-collection.js';
import { openRepositories, type OpenedStores } from '../../src/catalog/store/open-stores.js';
import type { RegistryStore } from '../../src/catalog/store/registry-store.js';
import { createLogger, type Logger } from '../../src/shared/logger.js';
import { SchemaSet } from '../../src/shared/schemas.js';
import { ApiClient } from './api-client.js';
import type { EventsDeps } from '../../src/catalog/events/catalog-events-wiring.js';
import type { EventStore } from '../../src/catalog/store/event-store.js';
import { destinationProblem } from '../../src/catalog/health/webhook-post.js';
import { getMongoUri } from './mongo-server.js';
import { OpenApiValidator } from './openapi-validator.js';

export const STORE_KINDS = ['embedded', 'mongo'] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

/** The stores `serve` opens (the database: benchmarks seed and checkpoint it), and a cleanup. */
export interface TestStore extends OpenedStores {
  cleanup(): Promise<void>;
}

/** A fresh, empty store of the given kind: a temp dir, or a new database on the test MongoDB/FerretDB. */
export async function openTestStore(kind: StoreKind, replaceMode?: ReplaceMode): Promise<TestStore> {
  if (kind === 'embedded') {
    const dir = await mkdtemp(path.join(tmpdir(), 'catalog-embedded-'));
    const opened = await openRepositories(await EmbeddedDatabase.open(dir), 'registries', '');
    return {
      ...opened,
      cleanup: async () => {
        await opened.database.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  return openMongoTestStore(`test_${randomUUID().replace(/-/g, '').slice(0, 16)}`, replaceMode);
}

/** The repositories on `database` of the test MongoDB/FerretDB, as `serve` opens them; cleanup drops it. */
export async function openMongoTestStore(database: string, replaceMode?: ReplaceMode): Promise<TestStore> {
  const mongo = await MongoDatabase.connect({ uri: await getMongoUri(), database, replaceMode });
  const opened = await openRepositories(mongo, 'container_registry', 'container_registry_');
  return {
    ...opened,
    cleanup: async () => {
      await mongo.dropDatabase();
      await mongo.close();
    },
  };
}

let schemas: SchemaSet | undefined;
let validator: OpenApiValidator | undefined;

/** A credentials key made for the test run. */
export const TEST_CIPHER = new CredentialCipher([{ id: 'test', key: randomBytes(32) }]);

export interface StartOptions {
  /** Seals credentials; `TEST_CIPHER` unless given (pass `undefined` for a keyless catalog). */
  cipher?: CredentialCipher | undefined;
  /** Enables health checks with this prober. */
  probe?: (target: ProbeTarget) => Promise<HealthReport>;
  historySize?: number;
  /** Logs of the catalog (silent by default). */
  logger?: Logger;
  /** Access control, rate limits, CORS (open and unlimited by default). */
  access?: AccessDeps;
  /** Enables the image index with this crawler (see `loopbackCrawler`). */
  crawl?: CrawlFunction;
  /** A MongoDB store on this database of the test server (already filled, say) instead of a fresh one. */
  mongoDatabase?: string;
  /** Events and webhooks: webhook URLs may be loopback unless `events.checkDestination` says otherwise. */
  events?: Partial<EventsDeps>;
}

export interface TestCatalog {
  readonly api: ApiClient;
  readonly store: RegistryStore;
  readonly healthStore: HealthStore;
  readonly imageStore: ImageStore;
  readonly eventStore: EventStore;
  readonly catalog: Catalog;
  stop(): Promise<void>;
}

const LOOPBACK_POLICY = new AddressPolicy({ allow: ['127.0.0.0/8', '::1/128'], deny: [] });

/** The catalog in-process on a fresh store; every response is checked against openapi.yaml. */
export async function startCatalog(kind: StoreKind, options: StartOptions = {}): Promise<TestCatalog> {
  schemas ??= new SchemaSet();
  validator ??= new OpenApiValidator(schemas);
  const { store, healthStore, imageStore, heartbeatStore, eventStore, cleanup } =
    options.mongoDatabase !== undefined
      ? await openMongoTestStore(options.mongoDatabase)
      : await openTestStore(kind);
  const catalog = createCatalog({
    store,
    schemas,
    logger: options.logger ?? createLogger('test', 'silent'),
    bodyLimitBytes: 1024 * 1024,
    cipher: 'cipher' in options ? options.cipher : TEST_CIPHER,
    health: options.probe && {
      store: healthStore,
      probe: options.probe,
      historySize: options.historySize ?? 50,
    },
    access: options.access,
    images: options.crawl && { store: imageStore, crawl: options.crawl },
    // Self-registration routes come with the image index (their events feed it).
    heartbeats: { store: heartbeatStore },
    events: {
      store: eventStore,
      checkDestination: (url) => destinationProblem(url, LOOPBACK_POLICY),
      ...options.events,
    },
  });
  return {
    api: new ApiClient(catalog.handler, validator),
    store,
    healthStore,
    imageStore,
    eventStore,
    catalog,
    stop: cleanup,
  };
}

/** A catalog with health checks and its background monitor (not started), probing loopback registries. */
export function createMonitoredCatalog(
  { store, healthStore }: Pick<TestStore, 'store' | 'healthStore'>,
  options: { owner: string; config: MonitorConfig; probeTimeoutMs: number; clock?: Clock },
): { catalog: Catalog; monitor: HealthMonitor } {
  const logger = createLogger(options.owner, 'silent');
  const probe = createProber({
    policy: new AddressPolicy({ allow: ['127.0.0.0/8'], deny: [] }),
    defaultTimeoutMs: options.probeTimeoutMs,
  });
  const catalog = createCatalog({
    store,
    schemas: (schemas ??= new SchemaSet()),
    logger,
    bodyLimitBytes: 1 << 20,
    health: { store: healthStore, probe, historySize: options.config.historySize },
  });
  const monitor = new HealthMonitor({
    registries: store,
    healthStore,
    health: catalog.health!,
    config: options.config,
    logger,
    owner: options.owner,
    clock: options.clock,
  });
  return { catalog, monitor };
}

/** The crawler limits tests use unless they say otherwise (small, so a misbehaving registry ends fast). */
export const TEST_CRAWL_LIMITS: CrawlerLimits = {
  concurrencyPerRegistry: 4,
  requestBudget: 2_000,
  timeoutMs: 20_000,
  maxManifestBytes: 4 * 1024 * 1024,
  maxRetryAfterMs: 5_000,
  requestTimeoutMs: 5_000,
};

/** A crawler allowed to reach loopback only (127.0.0.0/8, ::1), as `HEALTH_PROBE_ALLOW` would allow it. */
export function loopbackCrawler(limits: Partial<CrawlerLimits> = {}): CrawlFunction {
  return createCrawler({
    policy: new AddressPolicy({ allow: ['127.0.0.0/8', '::1/128'], deny: [] }),
    limits: { ...TEST_CRAWL_LIMITS, ...limits },
  });
}
