/**
 * Storage paths of the pull-through cache, beside the registry's own layout (`storage/layout.ts`).
 * Cached manifests, blobs and tags use the registry's layout unchanged, under the local name
 * (`mirror/library/redis`), so `_catalog`, tags/list and `gc` see them like pushed content. Only
 * what has no place there lives here:
 *
 *   <root>/proxy/referrers/<name>/<alg>-<hex>   the upstream's referrers index of a subject, as received
 *
 * Mtimes carry the cache's clocks: a tag file's mtime is when the upstream last confirmed it
 * (staleness), a revision or layer link's mtime when it was last pulled (TTL eviction by `gc`).
 */
import type { Digest } from '../domain/names.js';

export const PROXY_DIR = 'proxy';

export const proxyReferrersDir = (name: string): string => `${PROXY_DIR}/referrers/${name}`;
export const proxyReferrersPath = (name: string, subject: Digest): string =>
  `${proxyReferrersDir(name)}/${subject.algorithm}-${subject.hex}`;
