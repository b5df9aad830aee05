import cors from 'cors';
import express, { type Express } from 'express';
import swaggerUi from 'swagger-ui-express';
import type { Registry } from 'prom-client';
import type { Logger } from '../shared/logger.js';
import type { SchemaSet } from '../shared/schemas.js';
import type { CredentialCipher } from './domain/credential-cipher.js';
import { HealthService } from './domain/health-service.js';
import { RegistryService } from './domain/registries.js';
import type { HealthReport, ProbeTarget } from './health/probe.js';
import { AccessPolicy } from './access/policy.js';
import { withAccessControl } from './http/access-control.js';
import { jsonBody } from './http/json-body.js';
import type { RequestListener } from 'node:http';
import { withFastRead } from './http/fast-read.js';
import { createMetricsRegistry, httpMetrics, routeMatcher, type HttpMetrics } from './http/metrics.js';
import { bundleOpenApi, routeTemplates } from './http/openapi.js';
import { problemHandler, sendProblem } from './http/problem.js';
import { requestContext } from './http/request-context.js';
import { securityHeaders } from './http/security-headers.js';
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
  /** Access control, rate limits and CORS; without it: open, unlimited, no CORS (tests). */
  readonly access?: AccessDeps;
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
  /** What a server listens with: the Express app behind the fast read path (http/fast-read.ts). */
  readonly handler: RequestListener;
  /** The Express app alone (every route, described by openapi.yaml). */
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
  const openapi = bundleOpenApi(deps.schemas);
  const http = httpMetrics(metrics, 'catalog_', { routeOf: routeMatcher(routeTemplates(openapi)) });
  const access = deps.access ?? OPEN_ACCESS;
  const headers = securityHeaders();
  const app = createCatalogApp(deps, openapi, access, headers, registries, health, metrics, http);
  const handler = withAccessControl(
    withFastRead(app, { registries, metrics: http, logger: deps.logger, securityHeaders: headers }),
    { ...access, securityHeaders: headers, metrics: http, logger: deps.logger },
  );
  return { handler, app, registries, health, metrics };
}

function createCatalogApp(
  deps: CatalogDeps,
  openapi: Record<string, unknown>,
  access: AccessDeps,
  headers: Readonly<Record<string, string>>,
  registries: RegistryService,
  health: HealthService | undefined,
  metrics: Registry,
  http: HttpMetrics,
): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(requestContext(deps.logger));
  app.use(http.middleware);
  app.use((_req, res, next) => {
    res.set(headers);
    next();
  });
  if (access.corsOrigins.length > 0) {
    app.use(
      cors({
        origin: access.corsOrigins.includes('*') ? '*' : [...access.corsOrigins],
        allowedHeaders: ['Authorization', 'Content-Type', 'If-Match', 'If-None-Match', 'X-Request-Id'],
        exposedHeaders: ['ETag', 'Location', 'Link', 'X-Total-Count', 'X-Request-Id', 'Retry-After'],
        maxAge: 600,
      }),
    );
  }
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
  // Swagger UI loads the spec from /openapi.json rather than having it inlined into
  // swagger-ui-init.js: the inlining goes through String.replace, which reads `$'` and friends in
  // schema text as replacement patterns. The URL is relative so /docs works behind a path prefix;
  // customCss is given so the page's <style> does not say "undefined"; validatorUrl null keeps
  // the browser from sending the spec to an outside validator.
  app.use(
    '/docs',
    swaggerUi.serve,
    swaggerUi.setup(undefined, {
      customSiteTitle: 'AIOS container registry catalog',
      customCss: '',
      swaggerOptions: { url: '../openapi.json', validatorUrl: null },
    }),
  );

  app.use((req, res) => {
    sendProblem(req, res, 'not_found', `No route for ${req.method} ${req.path}`);
  });
  app.use(problemHandler(deps.logger));
  return app;
}
