/**
 * TTL eviction of the pull-through cache, run by `gc` before its mark and sweep. In a
 * repository under a proxy prefix, a manifest whose revision link was not pulled within the
 * upstream's `ttl_seconds` loses its revision link, the tags pointing at it and its referrer
 * entries; a layer link not pulled within the TTL goes too. The sweep that follows removes the
 * blobs nothing links any more. Pulls refresh the links' mtimes (`pull-through-cache.ts`), so
 * "last pull" is the link's mtime. gc itself does not mark or sweep proxied repositories
 * (their untagged, digest-pulled manifests are kept until their TTL, not the grace period).
 */
import { parseManifest } from '../domain/manifests.js';
import { DIGEST_ALGORITHMS, parseDigest, type Digest } from '../domain/names.js';
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

async function links(driver: StorageDriver, dir: string): Promise<{ digest: Digest; mtimeMs: number }[]> {
  const found: { digest: Digest; mtimeMs: number }[] = [];
  for (const algorithm of await driver.list(dir)) {
    if (!Object.hasOwn(DIGEST_ALGORITHMS, algorithm)) continue;
    for (const hex of await driver.list(`${dir}/${algorithm}`)) {
      const stat = await driver.stat(`${dir}/${algorithm}/${hex}`);
      if (stat === undefined || stat.isDirectory) continue;
      try {
        found.push({ digest: parseDigest(`${algorithm}:${hex}`), mtimeMs: stat.mtimeMs });
      } catch {
        // not a link of ours
      }
    }
  }
  return found;
}

/** The upstream whose prefix `name` lies under, if any. */
export function upstreamOf(upstreams: readonly UpstreamConfig[], name: string): UpstreamConfig | undefined {
  return upstreams.find((upstream) => name.startsWith(upstream.prefix));
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
    for (const link of await links(driver, revisionsDir(name))) {
      if (link.mtimeMs >= cutoff) continue;
      expired.add(link.digest.value);
      report.manifests.push({ repository: name, digest: link.digest.value });
      if (options.dryRun) continue;
      const mediaType = (await driver.readFile(revisionLinkPath(name, link.digest)))?.toString('utf8');
      const body = await driver.readFile(blobPath(link.digest));
      await driver.delete(revisionLinkPath(name, link.digest));
      await driver.delete(proxyReferrersPath(name, link.digest));
      if (mediaType === undefined || body === undefined) continue;
      try {
        const subject = parseManifest(body, mediaType).subject;
        if (subject !== undefined) await driver.delete(referrerPath(name, subject, link.digest));
      } catch {
        // not a manifest we can parse: nothing else refers to it
      }
    }
    for (const tag of await driver.list(tagsDir(name))) {
      const target = (await driver.readFile(tagPath(name, tag)))?.toString('utf8');
      if (target === undefined || !expired.has(target)) continue;
      report.tags.push({ repository: name, tag });
      if (!options.dryRun) await driver.delete(tagPath(name, tag));
    }
    for (const link of await links(driver, layersDir(name))) {
      if (link.mtimeMs >= cutoff) continue;
      report.layerLinks.push({ repository: name, digest: link.digest.value });
      if (!options.dryRun) await driver.delete(layerLinkPath(name, link.digest));
    }
  }
  return report;
}
