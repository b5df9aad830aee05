/**
 * TTL eviction of the pull-through cache, run by `gc` before its mark and sweep. In a
 * repository under a proxy prefix, a manifest whose revision link was not pulled within the
 * upstream's `ttl_seconds` loses its revision link, the tags pointing at it and its referrer
 * entries; a layer link not pulled within the TTL goes too. The sweep that follows removes the
 * blobs nothing links any more. Pulls refresh the links' mtimes (`pull-through-cache.ts`), so
 * "last pull" is the link's mtime. gc itself does not mark or sweep proxied repositories
 * (their untagged, digest-pulled manifests are kept until their TTL, not the grace period).
 */
import { listLinks } from '../domain/links.js';
import { parseManifest } from '../domain/manifests.js';
import { parseDigest, type Digest } from '../domain/names.js';
import type { StorageDriver } from '../storage/driver.js';
import {
  blobPath,
  layerLinkPath,
  layersDir,
  referrerPath,
  revisionLinkPath,
  revisionsDir,
  tagPath,
  tagsDir,
} from '../storage/layout.js';
import type { UpstreamConfig } from './config.js';
import { proxyReferrersPath } from './layout.js';

export interface EvictionOptions {
  readonly dryRun: boolean;
  readonly now?: () => number;
}

/** What eviction removed (or would remove, in a dry run). */
export interface EvictionReport {
  readonly manifests: { repository: string; digest: string }[];
  readonly tags: { repository: string; tag: string }[];
  readonly layerLinks: { repository: string; digest: string }[];
}

/** The upstream whose prefix `name` lies under, if any. */
export function upstreamOf(upstreams: readonly UpstreamConfig[], name: string): UpstreamConfig | undefined {
  return upstreams.find((upstream) => name.startsWith(upstream.prefix));
}

/** Removes a cached manifest: its revision link, cached referrers answer and referrer entry. */
async function removeRevision(driver: StorageDriver, name: string, digest: Digest): Promise<void> {
  const mediaType = (await driver.readFile(revisionLinkPath(name, digest)))?.toString('utf8');
  const body = await driver.readFile(blobPath(digest));
  await driver.delete(revisionLinkPath(name, digest));
  await driver.delete(proxyReferrersPath(name, digest));
  if (mediaType === undefined || body === undefined) return;
  try {
    const subject = parseManifest(body, mediaType).subject;
    if (subject !== undefined) await driver.delete(referrerPath(name, subject, digest));
  } catch {
    // not a manifest we can parse: nothing else refers to it
  }
}

/** Removes the tags of `name` that point at one of `digests`; returns them. */
async function removeTags(
  driver: StorageDriver,
  name: string,
  digests: ReadonlySet<string>,
  dryRun: boolean,
) {
  const removed: string[] = [];
  for (const tag of await driver.list(tagsDir(name))) {
    const target = (await driver.readFile(tagPath(name, tag)))?.toString('utf8');
    if (target === undefined || !digests.has(target)) continue;
    removed.push(tag);
    if (!dryRun) await driver.delete(tagPath(name, tag));
  }
  return removed;
}

/** Removes proxied content not pulled within its upstream's TTL from `repositories`. */
export async function evictExpired(
  driver: StorageDriver,
  upstreams: readonly UpstreamConfig[],
  repositories: readonly string[],
  options: EvictionOptions,
): Promise<EvictionReport> {
  const now = options.now ?? Date.now;
  const report: EvictionReport = { manifests: [], tags: [], layerLinks: [] };
  for (const name of repositories) {
    const upstream = upstreamOf(upstreams, name);
    if (upstream === undefined) continue;
    const cutoff = now() - upstream.ttlSeconds * 1000;
    const expired = new Set<string>();
    for (const link of await listLinks(driver, revisionsDir(name))) {
      if (link.mtimeMs >= cutoff) continue;
      expired.add(link.digest.value);
      report.manifests.push({ repository: name, digest: link.digest.value });
      if (!options.dryRun) await removeRevision(driver, name, link.digest);
    }
    for (const tag of await removeTags(driver, name, expired, options.dryRun))
      report.tags.push({ repository: name, tag });
    for (const link of await listLinks(driver, layersDir(name))) {
      if (link.mtimeMs >= cutoff) continue;
      report.layerLinks.push({ repository: name, digest: link.digest.value });
      if (!options.dryRun) await driver.delete(layerLinkPath(name, link.digest));
    }
  }
  return report;
}

interface CachedRevision {
  readonly name: string;
  readonly digest: Digest;
  readonly lastPull: number;
  /** The manifest's own bytes and the blobs it names (config, layers). */
  readonly blobs: readonly Digest[];
}

/**
 * Size cap, least recently pulled first: while the blobs named by cached manifests add up to
 * more than `maxBytes`, the manifest pulled longest ago goes (revision link, its tags, and the
 * layer links no other cached manifest of its repository needs). Blobs shared by several
 * manifests count once and are freed only with the last of them; the sweep removes the bytes.
 */
export async function evictOverCap(
  driver: StorageDriver,
  upstreams: readonly UpstreamConfig[],
  repositories: readonly string[],
  maxBytes: number,
  options: EvictionOptions,
): Promise<EvictionReport> {
  const report: EvictionReport = { manifests: [], tags: [], layerLinks: [] };
  const revisions: CachedRevision[] = [];
  for (const name of repositories) {
    if (upstreamOf(upstreams, name) === undefined) continue;
    for (const link of await listLinks(driver, revisionsDir(name))) {
      const blobs: Digest[] = [link.digest];
      const mediaType = (await driver.readFile(revisionLinkPath(name, link.digest)))?.toString('utf8');
      const body = await driver.readFile(blobPath(link.digest));
      if (mediaType !== undefined && body !== undefined) {
        try {
          blobs.push(...parseManifest(body, mediaType).blobs);
        } catch {
          // only its own bytes count
        }
      }
      revisions.push({ name, digest: link.digest, lastPull: link.mtimeMs, blobs });
    }
  }
  const users = new Map<string, number>();
  const sizes = new Map<string, number>();
  for (const revision of revisions) {
    for (const blob of new Set(revision.blobs.map((digest) => digest.value))) {
      users.set(blob, (users.get(blob) ?? 0) + 1);
      if (!sizes.has(blob)) sizes.set(blob, (await driver.stat(blobPath(parseDigest(blob))))?.size ?? 0);
    }
  }
  let total = [...sizes.values()].reduce((sum, size) => sum + size, 0);
  revisions.sort((a, b) => a.lastPull - b.lastPull);
  const remaining = new Set(revisions);
  for (const revision of revisions) {
    if (total <= maxBytes) break;
    remaining.delete(revision);
    report.manifests.push({ repository: revision.name, digest: revision.digest.value });
    for (const blob of new Set(revision.blobs.map((digest) => digest.value))) {
      const left = (users.get(blob) ?? 1) - 1;
      users.set(blob, left);
      if (left === 0) total -= sizes.get(blob) ?? 0;
    }
    const stillNeeded = new Set(
      [...remaining]
        .filter((other) => other.name === revision.name)
        .flatMap((other) => other.blobs.map((d) => d.value)),
    );
    for (const tag of await removeTags(
      driver,
      revision.name,
      new Set([revision.digest.value]),
      options.dryRun,
    ))
      report.tags.push({ repository: revision.name, tag });
    if (!options.dryRun) await removeRevision(driver, revision.name, revision.digest);
    for (const blob of revision.blobs.slice(1)) {
      if (stillNeeded.has(blob.value)) continue;
      report.layerLinks.push({ repository: revision.name, digest: blob.value });
      if (!options.dryRun) await driver.delete(layerLinkPath(revision.name, blob));
    }
  }
  return report;
}
