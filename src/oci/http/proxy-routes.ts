/**
 * Routes of repositories under a pull-through cache prefix. Reads go through the cache
 * (`proxy/pull-through-cache.ts`); tags/list and _catalog are the normal routes (they list what
 * is cached); every write is refused before it gets here (405 UNSUPPORTED, in app.ts).
 */
import { MEDIA_TYPES } from '../domain/manifests.js';
import { parseDigest, parseReference } from '../domain/names.js';
import type { ProxyTarget, PullThroughCache } from '../proxy/pull-through-cache.js';
import { UpstreamFailure } from '../proxy/upstream-client.js';
import { blobHeaders, getBlob, requestedRange } from './blob-routes.js';
import { send, type RouteContext } from './context.js';
import { sendManifest } from './manifest-routes.js';

/** A route handler of a proxied repository (`context.name` is the local name). */
export type ProxyRouteHandler = (
  context: RouteContext,
  target: ProxyTarget,
  cache: PullThroughCache,
) => Promise<void>;

async function getProxiedManifest(context: RouteContext, target: ProxyTarget, cache: PullThroughCache) {
  const reference = parseReference(context.param, 'ManifestUnknown');
  const { manifest, warning } = await cache.manifest(target, reference);
  sendManifest(context.req, context.res, manifest, warning === undefined ? {} : { Warning: warning });
}

async function getProxiedBlob(context: RouteContext, target: ProxyTarget, cache: PullThroughCache) {
  const { req, res } = context;
  const digest = parseDigest(context.param);
  if (await cache.localBlob(target, digest)) return getBlob(context);
  if (req.method === 'HEAD') {
    const size = await cache.headBlob(target, digest);
    res.writeHead(200, {
      ...blobHeaders(digest.value),
      ...(size === undefined ? {} : { 'Content-Length': size }),
    });
    res.end();
    return;
  }
  const flight = cache.fetchBlob(target, digest);
  await flight.ready;
  const size = flight.size;
  const headers = blobHeaders(digest.value);
  let start = 0;
  let end = Number.MAX_SAFE_INTEGER;
  let status = 200;
  if (size !== undefined) {
    const range = requestedRange(context, size);
    start = range?.start ?? 0;
    end = range?.end ?? size - 1;
    if (range !== undefined) {
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['Content-Length'] = end - start + 1;
  }
  res.writeHead(status, headers);
  if (size === 0) {
    res.end();
    return;
  }
  context.services.bytesSent(await flight.stream(res, start, end));
}

async function listProxiedReferrers(context: RouteContext, target: ProxyTarget, cache: PullThroughCache) {
  const subject = parseDigest(context.param);
  const artifactType = context.query.get('artifactType') ?? undefined;
  const index = await cache.referrers(target, subject, artifactType);
  send(
    context.res,
    200,
    {
      'Content-Type': MEDIA_TYPES.ociIndex,
      ...(artifactType === undefined ? {} : { 'OCI-Filters-Applied': 'artifactType' }),
    },
    JSON.stringify(index),
  );
}

/** Upstream failures reach the client as the registry error they map to (one translation, here). */
function translated(handler: ProxyRouteHandler): ProxyRouteHandler {
  return async (context, target, cache) => {
    try {
      await handler(context, target, cache);
    } catch (error) {
      throw error instanceof UpstreamFailure ? error.toOciError() : error;
    }
  };
}

const manifest = translated(getProxiedManifest);
const blob = translated(getProxiedBlob);

/** Handlers by route name and method; routes not listed use the normal handler. */
export const PROXY_ROUTES: Readonly<Record<string, Readonly<Record<string, ProxyRouteHandler>>>> = {
  manifest: { GET: manifest, HEAD: manifest },
  blob: { GET: blob, HEAD: blob },
  referrers: { GET: translated(listProxiedReferrers) },
};
