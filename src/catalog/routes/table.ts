import type { Requirement } from '../access/policy.js';
import { RouteIndex, type RateLimit, type RouteSpec } from '../http/route-table.js';
import { checkHealth, healthHistory, healthStatuses } from './health.js';
import {
  createRegistry,
  deleteRegistry,
  queryRegistries,
  readRegistry,
  readRegistryFast,
  updateRegistry,
} from './registries.js';
import {
  crawlRegistry,
  lastCrawl,
  queryImages,
  registryImages,
  resolveImage,
  resolveImageFast,
} from './images.js';
import type { CatalogServices } from './services.js';
import { registerRegistry, registryEvents, registryHeartbeat } from './self-registration.js';
import { streamEvents } from './events.js';
import {
  createWebhook,
  deleteWebhook,
  listDeliveries,
  listWebhooks,
  readWebhook,
  redeliver,
  updateWebhook,
} from './webhooks.js';
import { docs, liveness, openapiDocument, prometheusMetrics, readiness } from './system.js';
import { dashboard } from './ui.js';

/** `?verify=true` (or `=1`, or bare) on a create: the registry is probed before it is stored. */
const VERIFY = /(^|&)verify(=(true|1)?)?(&|$)/;
const verifyProbes = (query: string): RateLimit => (VERIFY.test(query) ? 'health-check' : 'client');
const withHealth = (services: CatalogServices) => services.health !== undefined;
const withImages = (services: CatalogServices) => services.images !== undefined;
const withSelfRegistration = (services: CatalogServices) => services.selfRegistration !== undefined;

/**
 * Every route of the catalog, in one table: Express registration (with 405 for other methods),
 * the access requirement of the gate and the fast read match are all derived from it
 * (http/route-table.ts, http/front.ts). Querying is a POST in the AIOS API, and only reads.
 */
export const CATALOG_ROUTES: readonly RouteSpec<CatalogServices>[] = [
  {
    method: 'POST',
    path: '/container_registry',
    role: 'write',
    rateLimit: verifyProbes,
    handler: createRegistry,
  },
  {
    method: 'GET',
    path: '/container_registry/:registry_id',
    role: 'read',
    rateLimit: 'client',
    fastRead: readRegistryFast,
    handler: readRegistry,
  },
  {
    method: 'PUT',
    path: '/container_registry/:registry_id',
    role: 'write',
    rateLimit: 'client',
    handler: updateRegistry,
  },
  {
    method: 'DELETE',
    path: '/container_registry/:registry_id',
    role: 'write',
    rateLimit: 'client',
    handler: deleteRegistry,
  },
  {
    method: 'POST',
    path: '/container_registries',
    role: 'read',
    rateLimit: 'client',
    handler: queryRegistries,
  },
  {
    method: 'GET',
    path: '/check_container_health/:registry_id',
    role: 'read',
    rateLimit: 'health-check',
    handler: checkHealth,
    available: withHealth,
  },
  {
    method: 'GET',
    path: '/container_registry/:registry_id/health',
    role: 'read',
    rateLimit: 'client',
    handler: healthHistory,
    available: withHealth,
  },
  {
    method: 'GET',
    path: '/container_registries/health',
    role: 'read',
    rateLimit: 'client',
    handler: healthStatuses,
    available: withHealth,
  },
  {
    method: 'POST',
    path: '/container_images',
    role: 'read',
    rateLimit: 'client',
    handler: queryImages,
    available: withImages,
  },
  {
    method: 'GET',
    path: '/resolve_image',
    role: 'read',
    rateLimit: 'client',
    fastRead: resolveImageFast,
    handler: resolveImage,
    available: withImages,
  },
  {
    method: 'GET',
    path: '/container_registry/:registry_id/images',
    role: 'read',
    rateLimit: 'client',
    handler: registryImages,
    available: withImages,
  },
  {
    method: 'POST',
    path: '/container_registry/:registry_id/crawl',
    role: 'write',
    // A crawl sends many requests out: limited like on-demand health checks.
    rateLimit: 'health-check',
    handler: crawlRegistry,
    available: withImages,
  },
  {
    method: 'GET',
    path: '/container_registry/:registry_id/crawl',
    role: 'read',
    rateLimit: 'client',
    handler: lastCrawl,
    available: withImages,
  },
  // Self-registration (DESIGN.md section 12): the `register` role suffices, bound to its own entry.
  {
    method: 'PUT',
    path: '/container_registry/:registry_id/registration',
    role: 'register',
    // A registration probes the URL once (the address policy): limited like health checks.
    rateLimit: 'health-check',
    handler: registerRegistry,
    available: withSelfRegistration,
  },
  {
    method: 'POST',
    path: '/container_registry/:registry_id/heartbeat',
    role: 'register',
    rateLimit: 'client',
    handler: registryHeartbeat,
    available: withSelfRegistration,
  },
  {
    method: 'POST',
    path: '/container_registry/:registry_id/events',
    role: 'register',
    rateLimit: 'client',
    handler: registryEvents,
    available: withSelfRegistration,
  },
  // Webhooks and the event stream (README, "Events and webhooks"). Every webhook route needs
  // `write`, as registry writes do: a subscription's URL may hold the receiver's token, and
  // creating one makes the catalog send requests out. The stream needs only `read`.
  ...(
    [
      ['POST', '/webhooks', createWebhook],
      ['GET', '/webhooks', listWebhooks],
      ['GET', '/webhooks/:webhook_id', readWebhook],
      ['PUT', '/webhooks/:webhook_id', updateWebhook],
      ['DELETE', '/webhooks/:webhook_id', deleteWebhook],
      ['GET', '/webhooks/:webhook_id/deliveries', listDeliveries],
      ['POST', '/webhooks/:webhook_id/deliveries/:delivery_id/redeliver', redeliver],
    ] as const
  ).map(([method, path, handler]): RouteSpec<CatalogServices> => ({
    method,
    path,
    role: 'write',
    rateLimit: 'client',
    handler,
    available: (services) => services.webhooks !== undefined,
  })),
  {
    method: 'GET',
    path: '/events',
    role: 'read',
    rateLimit: 'client',
    handler: streamEvents,
    available: (services) => services.webhooks !== undefined,
  },
  { method: 'GET', path: '/healthz', role: 'public', rateLimit: 'none', handler: liveness },
  { method: 'GET', path: '/readyz', role: 'public', rateLimit: 'none', handler: readiness },
  { method: 'GET', path: '/metrics', role: 'admin', rateLimit: 'client', handler: prometheusMetrics },
  { method: 'GET', path: '/openapi.json', role: 'read', rateLimit: 'client', handler: openapiDocument },
  { method: 'GET', path: '/docs', mount: true, role: 'read', rateLimit: 'client', handler: docs },
  // The dashboard's page and files hold no data (it reads through the API with the person's token).
  { method: 'GET', path: '/ui', mount: true, role: 'public', rateLimit: 'none', handler: dashboard },
];

export const CATALOG_ROUTE_INDEX = new RouteIndex(CATALOG_ROUTES);

/** What a request needs before it reaches a route, as the gate sees it (unit-tested). */
export function requirementOf(method: string, url: string): Requirement {
  return CATALOG_ROUTE_INDEX.requirement(method, CATALOG_ROUTE_INDEX.match(method, url));
}
