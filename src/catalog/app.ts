import express, { type Express } from 'express';
import { pinoHttp } from 'pino-http';
import { randomUUID } from 'node:crypto';
import swaggerUi from 'swagger-ui-express';
import type { Registry } from 'prom-client';
import type { Logger } from '../shared/logger.js';
import type { SchemaSet } from '../shared/schemas.js';
import type { CredentialCipher } from './domain/credential-cipher.js';
import { RegistryService, type ReachabilityCheck } from './domain/registries.js';
import { jsonBody } from './http/json-body.js';
import { createMetricsRegistry, httpMetrics } from './http/metrics.js';
import { bundleOpenApi } from './http/openapi.js';
import { problemHandler, sendProblem } from './http/problem.js';
import { registryRoutes } from './routes/registries.js';
import type { RegistryStore } from './store/registry-store.js';

export interface CatalogAppDeps {
  readonly store: RegistryStore;
  readonly schemas: SchemaSet;
  readonly logger: Logger;
  readonly bodyLimitBytes: number;
  readonly metrics?: Registry;
  readonly checkReachable?: ReachabilityCheck;
  readonly cipher?: CredentialCipher;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** Builds the catalog's Express app from its dependencies. It never listens: the caller does. */
export function createCatalogApp(deps: CatalogAppDeps): Express {
  const metrics = deps.metrics ?? createMetricsRegistry('catalog_');
  const service = new RegistryService({
    store: deps.store,
    schemas: deps.schemas,
    checkReachable: deps.checkReachable,
    cipher: deps.cipher,
  });
  const openapi = bundleOpenApi(deps.schemas);

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(
    pinoHttp({
      logger: deps.logger,
      genReqId: (req, res) => {
        const given = req.headers['x-request-id'];
        const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
    }),
  );
  app.use(httpMetrics(metrics, 'catalog_'));
  app.use(jsonBody(deps.bodyLimitBytes));

  app.use(registryRoutes(service));

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
