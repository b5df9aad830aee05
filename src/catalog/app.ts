import express, { type Express } from 'express';
import type { Registry } from 'prom-client';
import type { Logger } from '../shared/logger.js';
import type { SchemaSet } from '../shared/schemas.js';
import type { CredentialCipher } from './domain/credential-cipher.js';
import { HealthService } from './domain/health-service.js';
import { ImageService, type CrawlFunction } from './domain/images.js';
import { RegistryService } from './domain/registries.js';
import type { ProbeTarget } from './model.js';
import type { HealthReport } from './model.js';
import { AccessPolicy } from './access/policy.js';
import { accessGate } from './http/access-control.js';
import { jsonBody } from './http/json-body.js';
import type { RequestListener } from 'node:http';
import { createFront, type Front } from './http/front.js';
import { createMetricsRegistry, httpMetrics } from './http/metrics.js';
import { bundleOpenApi } from './http/openapi.js';
import { problemHandler, sendProblem } from './http/problem.js';
import type { CatalogServices } from './routes/services.js';
import { CATALOG_ROUTE_INDEX } from './routes/table.js';
import type { HealthStore } from './store/health-store.js';
import type { ImageStore } from './store/image-store.js';
import type { RegistryStore } from './store/registry-store.js';
import { HeartbeatService } from './domain/heartbeats.js';
import { RegistryEventService } from './domain/registry-events.js';
import type { HeartbeatStore } from './store/heartbeat-store.js';
import { createCatalogEvents, type CatalogEvents, type EventsDeps } from './events/catalog-events-wiring.js';

export interface CatalogDeps {
  readonly store: RegistryStore;
  readonly schemas: SchemaSet;
  readonly logger: Logger;
  readonly bodyLimitBytes: number;
  readonly cipher?: CredentialCipher;
  /** Health checking; without it the health routes are absent and `?verify=true` is refused. */
  readonly health?: {
    readonly store: HealthStore;
    readonly probe: (target: ProbeTarget) => Promise<HealthReport>;
    readonly historySize: number;
  };
  /** Access control, rate limits and CORS; without it: open, unlimited, no CORS (tests). */
  readonly access?: AccessDeps;
  /** The image index and its crawler; without it the image routes are absent. */
  readonly images?: { readonly store: ImageStore; readonly crawl: CrawlFunction };
  /** Self-registration and heartbeats (with `images`: events too); without it those routes are absent. */
  readonly heartbeats?: { readonly store: HeartbeatStore };
  /** Events, webhooks and `GET /events`; without it those routes are absent and nothing is published. */
  readonly events?: EventsDeps;
}

export interface AccessDeps {
  readonly policy: AccessPolicy;
  readonly rateLimitPerSecond: number;
  readonly healthCheckRateLimitPerMinute: number;
  /** Origins allowed to call from a browser; empty: CORS off. */
  readonly corsOrigins: readonly string[];
}

const OPEN_ACCESS: AccessDeps = {
  policy: new AccessPolicy([], false),
  rateLimitPerSecond: 0,
  healthCheckRateLimitPerMinute: 0,
  corsOrigins: [],
};

export interface Catalog {
  /** What a server listens with: the front door (http/front.ts) before the fast read path and Express. */
  readonly handler: RequestListener;
  /** The Express app alone (every route, described by openapi.yaml). */
  readonly app: Express;
  readonly registries: RegistryService;
  readonly health: HealthService | undefined;
  readonly images: ImageService | undefined;
  readonly heartbeats: HeartbeatService | undefined;
  readonly metrics: Registry;
  /** The publisher API (`publish`, `heartbeatStale`, `imageEvents`), webhooks and the stream; absent without `events`. */
  readonly events: CatalogEvents | undefined;
}

/** Builds the catalog (services, the front door and the Express app) from its dependencies. It never listens. */
export function createCatalog(deps: CatalogDeps): Catalog {
  const metrics = createMetricsRegistry('catalog_');
  let health: HealthService | undefined;
  const events =
    deps.events &&
    createCatalogEvents(deps.events, {
      store: deps.store,
      schemas: deps.schemas,
      cipher: deps.cipher,
      logger: deps.logger,
      healthStore: deps.health?.store,
    });
  const registries = new RegistryService({
    store: events?.registryStore ?? deps.store,
    schemas: deps.schemas,
    cipher: deps.cipher,
    checkReachable:
      deps.health &&
      (async (document) => {
        const report = await health!.probeOnly(document);
        return report.status === 'healthy' ? undefined : `${report.status}: ${report.detail}`;
      }),
  });
  const heartbeats =
    deps.heartbeats &&
    new HeartbeatService({
      store: deps.heartbeats.store,
      registries,
      schemas: deps.schemas,
      // The entry it writes passes the probe's address policy like any probed one: refused is 422.
      vetUrl:
        deps.health &&
        (async (document) => {
          const report = await health!.probeOnly(document);
          return report.status === 'refused' ? report.detail : undefined;
        }),
    });
  if (deps.health) {
    health = new HealthService({
      heartbeatOf: heartbeats && ((id) => heartbeats.viewOf(id)),
      registries,
      healthStore: deps.health.store,
      probe: deps.health.probe,
      historySize: deps.health.historySize,
      logger: deps.logger,
      metrics,
      onRecorded: events?.announcer && ((document, report) => events.announcer!.recorded(document, report)),
    });
  }
  const images =
    deps.images &&
    new ImageService({
      store: deps.images.store,
      registries,
      healthStore: deps.health?.store,
      crawl: deps.images.crawl,
      logger: deps.logger,
      metrics,
      onCrawled: events?.crawled,
    });
  const selfRegistration =
    heartbeats && deps.images
      ? {
          heartbeats,
          events: new RegistryEventService({
            images: deps.images.store,
            registries,
            heartbeats,
            schemas: deps.schemas,
            onApplied: events && ((registryId, applied) => events.imageEvents(registryId, applied)),
          }),
        }
      : undefined;
  const services: CatalogServices = {
    registries,
    health,
    images,
    selfRegistration,
    ping: () => deps.store.ping(),
    metrics,
    openapi: bundleOpenApi(deps.schemas),
    webhooks: events?.webhooks,
    eventStream: events?.stream,
  };
  const access = deps.access ?? OPEN_ACCESS;
  const front = createFront({
    routes: CATALOG_ROUTE_INDEX,
    services,
    gate: accessGate({ ...access, logger: deps.logger }),
    logger: deps.logger,
    metrics: httpMetrics(metrics, 'catalog_', {
      routeOf: (method, url) => CATALOG_ROUTE_INDEX.match(method, url)?.route.path,
    }),
    corsOrigins: access.corsOrigins,
  });
  const app = createCatalogApp(front, services, deps);
  return { handler: front.listener(app), app, registries, health, images, heartbeats, metrics, events };
}

/** The Express app: the front door's prelude, JSON bodies, every route of the table, the envelope for errors. */
function createCatalogApp(front: Front, services: CatalogServices, deps: CatalogDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(front.prelude);
  app.use(jsonBody(deps.bodyLimitBytes));
  CATALOG_ROUTE_INDEX.register(app, services);
  app.use((req, res) => {
    sendProblem(req, res, 'not_found', `No route for ${req.method} ${req.path}`);
  });
  app.use(problemHandler(deps.logger));
  return app;
}
