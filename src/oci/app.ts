/**
 * The registry HTTP app: a small router on `node:http` (no framework: manifest GET is the hot
 * path and is measured against CNCF Distribution). Every request goes through one function that
 * authenticates, dispatches to a route handler, maps `OciError`s to the spec's JSON body,
 * writes the access log and records metrics.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { ConfigError } from '../shared/config/env.js';
import type { OciConfig } from './config.js';
import type { Logger } from '../shared/logger.js';
import { Blobs } from './domain/blobs.js';
import { Content } from './domain/content.js';
import { validateName } from './domain/names.js';
import { Uploads } from './domain/uploads.js';
import type { TokenMode } from './auth/token-mode.js';
import { OciError } from './errors.js';
import { deleteBlob, getBlob } from './http/blob-routes.js';
import { send, type OciServices, type RouteHandler } from './http/context.js';
import { listReferrers, listRepositories, listTags } from './http/discovery-routes.js';
import { Htpasswd } from './auth/htpasswd.js';
import { deleteManifest, getManifest, putManifest } from './http/manifest-routes.js';
import { OciMetrics } from './http/metrics.js';
import { PROXY_ROUTES } from './http/proxy-routes.js';
import { ProxyMetrics } from './proxy/metrics.js';
import { PullThroughCache } from './proxy/pull-through-cache.js';
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus } from './http/upload-routes.js';
import type { StorageDriver } from './storage/driver.js';
import { FsDriver } from './storage/fs-driver.js';
import { notifyingContent, type ContentEvent } from './registration/content-events.js';

/** Dependencies of the app; tests pass their own clock and storage root. */
export interface OciAppDeps {
  readonly config: Pick<
    OciConfig,
    | 'storageRoot'
    | 'htpasswd'
    | 'readOnly'
    | 'uploadTimeoutSeconds'
    | 'maxManifestBytes'
    | 'maxUploadBytes'
    | 'maxConcurrentUploadsPerRepo'
    | 'readOnlyUsers'
  > &
    Partial<Pick<OciConfig, 'upstreams' | 'maxUploadSessionsPerRepo' | 'maxUploadSessionsPerClient'>>;
  readonly logger: Logger;
  readonly driver?: StorageDriver;
  readonly now?: () => number;
  /** Token mode (`--auth-config`): bearer tokens, namespaces, robots, quotas. */
  readonly tokenMode?: TokenMode;
  /** Called after each manifest push or delete (self-registration forwards them to the catalog). */
  readonly onContentEvent?: (event: ContentEvent) => void;
}

/** A registry app: the request handler plus what the entry point needs to run and stop it. */
export interface OciApp {
  readonly handler: RequestListener;
  readonly metrics: OciMetrics;
  readonly services: OciServices;
  /** The pull-through cache, when upstreams are configured. */
  readonly proxy: PullThroughCache | undefined;
  /** Removes abandoned uploads once; the app also runs it periodically. */
  purgeStaleUploads(): Promise<number>;
  /** Stops background work (the periodic upload purge). */
  close(): void;
}

interface Route {
  readonly name: string;
  readonly pattern: RegExp;
  /** Whether capture group 1 is a repository name. */
  readonly hasName: boolean;
  readonly methods: Readonly<Record<string, RouteHandler>>;
}

const ROUTES: readonly Route[] = [
  { name: 'base', pattern: /^\/v2\/?$/, hasName: false, methods: { GET: base, HEAD: base } },
  { name: 'catalog', pattern: /^\/v2\/_catalog$/, hasName: false, methods: { GET: listRepositories } },
  {
    name: 'manifest',
    pattern: /^\/v2\/(.+)\/manifests\/([^/]+)$/,
    hasName: true,
    methods: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest },
  },
  {
    name: 'uploads',
    pattern: /^\/v2\/(.+)\/blobs\/uploads\/?()$/,
    hasName: true,
    methods: { POST: startUpload },
  },
  {
    name: 'upload',
    pattern: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/,
    hasName: true,
    methods: { GET: uploadStatus, PATCH: patchUpload, PUT: finishUpload, DELETE: cancelUpload },
  },
  {
    name: 'blob',
    pattern: /^\/v2\/(.+)\/blobs\/([^/]+)$/,
    hasName: true,
    methods: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob },
  },
  { name: 'tags', pattern: /^\/v2\/(.+)\/tags\/list()$/, hasName: true, methods: { GET: listTags } },
  {
    name: 'referrers',
    pattern: /^\/v2\/(.+)\/referrers\/([^/]+)$/,
    hasName: true,
    methods: { GET: listReferrers },
  },
];

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const API_VERSION = { 'Docker-Distribution-API-Version': 'registry/2.0' } as const;
const PURGE_INTERVAL_MS = 10 * 60 * 1000;

async function base(context: { res: ServerResponse }): Promise<void> {
  send(context.res, 200, {}, {});
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new OciError('NameInvalid', 'malformed URL encoding');
  }
}

function loadHtpasswd(path: string): Htpasswd {
  try {
    return Htpasswd.load(path);
  } catch (error) {
    throw new ConfigError('REGISTRY_HTPASSWD', `cannot be read: ${(error as Error).message}`);
  }
}

export function createOciApp(deps: OciAppDeps): OciApp {
  const { config, logger } = deps;
  const now = deps.now ?? Date.now;
  const driver = deps.driver ?? new FsDriver(config.storageRoot);
  const metrics = new OciMetrics();
  const blobs = new Blobs(driver);
  const uploads = new Uploads(
    driver,
    blobs,
    now,
    {
      maxBytes: config.maxUploadBytes,
      maxConcurrentPerRepository: config.maxConcurrentUploadsPerRepo,
      maxSessionsPerRepository: config.maxUploadSessionsPerRepo,
      maxSessionsPerClient: config.maxUploadSessionsPerClient,
    },
    { bytesReceived: (count) => metrics.bytesReceived.inc(count) },
  );
  const readOnlyUsers = new Set(config.readOnlyUsers);
  const { tokenMode } = deps;
  const content = new Content(driver, blobs);
  const guarded = tokenMode?.attach(uploads, content, metrics.registry);
  const services: OciServices = {
    blobs,
    uploads: guarded?.uploads ?? uploads,
    content:
      deps.onContentEvent === undefined
        ? (guarded?.content ?? content)
        : notifyingContent(guarded?.content ?? content, deps.onContentEvent),
    maxManifestBytes: config.maxManifestBytes,
    bytesSent: (count) => metrics.bytesSent.inc(count),
  };
  const upstreams = config.upstreams ?? [];
  const proxy =
    upstreams.length === 0
      ? undefined
      : new PullThroughCache({
          upstreams,
          driver,
          blobs,
          content: services.content,
          metrics: new ProxyMetrics(metrics.registry),
          logger,
          maxManifestBytes: config.maxManifestBytes,
          maxBlobBytes: config.maxUploadBytes,
          now,
        });
  const htpasswd = config.htpasswd === undefined ? undefined : loadHtpasswd(config.htpasswd);
  let requestCount = 0;

  async function dispatch(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    query: string,
    matched: { route: string },
  ): Promise<void> {
    if (path === '/metrics' && req.method === 'GET') {
      matched.route = 'metrics';
      const body = await metrics.registry.metrics();
      send(res, 200, { 'Content-Type': metrics.registry.contentType }, body);
      return;
    }
    if (tokenMode !== undefined && path.startsWith('/auth/')) {
      matched.route = 'auth';
      await tokenMode.serve(req, res, path, query);
      return;
    }
    let user: string | undefined;
    if (htpasswd !== undefined && (path === '/v2' || path.startsWith('/v2/'))) {
      user = await htpasswd.authenticate(req.headers.authorization, req.socket.remoteAddress ?? '');
      if (user === undefined) {
        res.setHeader('WWW-Authenticate', 'Basic realm="aios-registry"');
        throw new OciError('Unauthorized');
      }
    }
    for (const route of ROUTES) {
      const match = route.pattern.exec(path);
      if (match === null) continue;
      matched.route = route.name;
      const handler = route.methods[req.method ?? ''];
      if (handler === undefined) {
        res.setHeader('Allow', Object.keys(route.methods).join(', '));
        throw new OciError('Unsupported', `method ${req.method} not allowed on ${route.name}`);
      }
      if (config.readOnly && WRITE_METHODS.has(req.method ?? '')) {
        throw new OciError('Unsupported', 'the registry is in read-only mode');
      }
      if (user !== undefined && readOnlyUsers.has(user) && WRITE_METHODS.has(req.method ?? '')) {
        throw new OciError('Denied', `user ${user} may only pull`);
      }
      const name = route.hasName ? validateName(match[1] ?? '') : '';
      const param = decode(match[2] ?? '');
      const search = new URLSearchParams(query);
      // Token mode decides first (a pull of a cached image needs the same pull grant), then the
      // pull-through cache takes the names under its prefixes.
      const scoped =
        tokenMode === undefined
          ? services
          : await tokenMode.authorize(req, route.name, name, search, services);
      const target = route.hasName ? proxy?.route(name, search.get('ns')) : undefined;
      if (target !== undefined && proxy !== undefined) {
        if (WRITE_METHODS.has(req.method ?? ''))
          throw new OciError(
            'Unsupported',
            `${name} is under the pull-through cache prefix ${target.upstream.config.prefix}: read only`,
          );
        const context = { req, res, name: target.local, param, query: search, services: scoped, logger };
        const proxied = PROXY_ROUTES[route.name]?.[req.method ?? ''];
        await (proxied === undefined ? handler(context) : proxied(context, target, proxy));
        return;
      }
      await handler({ req, res, name, param, query: search, services: scoped, logger });
      return;
    }
    if (tokenMode !== undefined && path.startsWith('/v2'))
      await tokenMode.authorize(req, 'unknown', '', new URLSearchParams(), services);
    throw new OciError('NotFound');
  }

  const handler: RequestListener = (req, res) => {
    const started = process.hrtime.bigint();
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt < 0 ? url : url.slice(0, queryAt);
    const query = queryAt < 0 ? '' : url.slice(queryAt + 1);
    const id = `${(requestCount += 1)}`;
    for (const [key, value] of Object.entries(API_VERSION)) res.setHeader(key, value);

    // The route label of metrics and logs: known once the path matched, also for errors.
    const matched = { route: 'unknown' };
    const done = (error?: unknown) => {
      const { route } = matched;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const method = req.method ?? '';
      metrics.requests.inc({ method, route, status: res.statusCode });
      metrics.duration.observe({ method, route }, seconds);
      const entry = {
        reqId: id,
        method,
        url,
        route,
        status: res.statusCode,
        ms: Math.round(seconds * 1e4) / 10,
        ...(error instanceof OciError ? { code: error.code } : {}),
      };
      if (error !== undefined && !(error instanceof OciError))
        logger.error({ ...entry, err: error }, 'request failed');
      else logger.info(entry, 'request');
    };

    dispatch(req, res, path, query, matched).then(
      () => done(),
      (error: unknown) => {
        if (!res.headersSent) {
          const registryError =
            error instanceof OciError ? error : new OciError('Unsupported', 'internal error');
          // 500 for our own failures: the spec has no code for them, UNSUPPORTED is the closest.
          const status = error instanceof OciError ? registryError.status : 500;
          send(res, status, registryError.headers, registryError.toBody());
        } else {
          res.destroy();
        }
        done(error);
      },
    );
  };

  const purgeStaleUploads = async () => {
    const purged = await uploads.purgeStale(config.uploadTimeoutSeconds * 1000);
    await uploads.purgeStaleTemp(config.uploadTimeoutSeconds * 1000);
    await proxy?.fetcher.purgeAbandoned(now);
    metrics.uploadsPurged.inc(purged);
    if (purged > 0) logger.info({ purged }, 'removed abandoned uploads');
    return purged;
  };
  const timer = setInterval(() => {
    purgeStaleUploads().catch((error: unknown) => logger.error({ err: error }, 'upload purge failed'));
  }, PURGE_INTERVAL_MS);
  timer.unref();

  return {
    handler,
    metrics,
    services,
    proxy,
    purgeStaleUploads,
    close: () => {
      clearInterval(timer);
      void htpasswd?.close();
    },
  };
}
