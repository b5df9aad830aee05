import express, { type Express } from 'express';
import swaggerUi from 'swagger-ui-express';
import type { Registry } from 'prom-client';
import type { Logger } from '../shared/logger.js';
import type { SchemaSet } from '../shared/schemas.js';
import type { CredentialCipher } from './domain/credential-cipher.js';
import { HealthService } from './domain/health-service.js';
import { RegistryService } from './domain/registries.js';
import type { HealthReport, ProbeTarget } from './health/probe.js';
import { jsonBody } from './http/json-body.js';
import { createMetricsRegistry, httpMetrics } from './http/metrics.js';
import { bundleOpenApi } from './http/openapi.js';
import { problemHandler, sendProblem } from './http/problem.js';
import { requestContext } from './http/request-context.js';
import { healthRoutes } from './routes/health.js';
import { registryRoutes } from './routes/registries.js';
import type { HealthStore } from './store/health-store.js';
import type { RegistryStore } from './store/registry-store.js';

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
}

export interface Catalog {
  readonly app: Express;
  readonly registries: RegistryService;
  readonly health: HealthService | undefined;
  readonly metrics: Registry;
}

/** Builds the catalog (services and the Express app) from its dependencies. It never listens. */
export function createCatalog(deps: CatalogDeps): Catalog {
  const metrics = createMetricsRegistry('catalog_');
  let health: HealthService | undefined;
  const registries = new RegistryService({
    store: deps.store,
    schemas: deps.schemas,
    cipher: deps.cipher,
    checkReachable:
      deps.health &&
      (async (document) => {
        const report = await health!.probeOnly(document);
        return report.status === 'healthy' ? undefined : `${report.status}: ${report.reason}`;
      }),
  });
  if (deps.health) {
    health = new HealthService({
      registries,
      healthStore: deps.health.store,
      probe: deps.health.probe,
      historySize: deps.health.historySize,
      logger: deps.logger,
      metrics,
    });
  }
  return { app: createCatalogApp(deps, registries, health, metrics), registries, health, metrics };
}

function createCatalogApp(
  deps: CatalogDeps,
  registries: RegistryService,
  health: HealthService | undefined,
  metrics: Registry,
): Express {
  const openapi = bundleOpenApi(deps.schemas);
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(requestContext(deps.logger));
  app.use(httpMetrics(metrics, 'catalog_'));
  app.use(jsonBody(deps.bodyLimitBytes));

  if (health) app.use(healthRoutes(health));
  app.use(registryRoutes(registries, health));

  app.get('/healthz', (_req, res) => {
    res.json({ success: true, data: { status: 'ok' } });
  });
  app.get('/readyz', async (req, res) => {
    try {
      await deps.store.ping();
      res.json({ success: true, data: { status: 'ready' } });
    } catch (error) {
      req.log.warn({ err: error }, 'store not reachable');
      sendProblem(req, res, 'unavailable', 'The store does not answer');
    }
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.contentType).send(await metrics.metrics());
  });
  app.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  app.use(
    '/docs',
    swaggerUi.serve,
    swaggerUi.setup(openapi, { customSiteTitle: 'AIOS container registry catalog' }),
  );

  app.use((req, res) => {
    sendProblem(req, res, 'not_found', `No route for ${req.method} ${req.path}`);
  });
  app.use(problemHandler(deps.logger));
  return app;
}
