/**
 * Garbage collection, mark and sweep, safe while the registry serves:
 *
 *   mark   per repository: every tag is a root; from each root follow index children, config
 *          and layers, and the referrers of every kept manifest. Links younger than the grace
 *          period are roots too: they belong to pushes in flight (blobs uploaded before their
 *          manifest, index children pushed before their index).
 *   sweep  per repository: remove unmarked revision links (and their referrer entries) and
 *          unmarked layer links older than the grace period; then remove every blob under
 *          blobs/ that no remaining link in any repository names and that is itself older than
 *          the grace period (a blob just renamed into place is younger).
 *
 * Manifest pushes refresh the mtimes of the blobs, links and child revisions they reference, so
 * what a manifest pushed during a run needs survives: each mtime is re-read right before a delete.
 * The remaining window (a push between that re-read and the unlink) is a few microseconds; use
 * `registry --read-only` during gc to close it entirely, as Distribution requires.
 */
import type { StorageDriver } from '../storage/driver.js';
import {
  BLOBS_DIR,
  blobPath,
  layerLinkPath,
  layersDir,
  referrerPath,
  referrersDir,
  revisionLinkPath,
  revisionsDir,
  tagPath,
  tagsDir,
} from '../storage/layout.js';
import { Blobs } from './blobs.js';
import { Content } from './content.js';
import { parseManifest } from './manifests.js';
import { DIGEST_ALGORITHMS, parseDigest, type Digest } from './names.js';

export interface GcOptions {
  /** Report what would be removed, remove nothing. */
  readonly dryRun: boolean;
  /** Anything written or referenced more recently than this is kept. */
  readonly gracePeriodMs: number;
  readonly now?: () => number;
  /**
   * Repositories gc neither marks nor sweeps: every link in them counts as referenced (the
   * pull-through cache's, which it evicts by TTL itself before gc runs).
   */
  readonly keepRepository?: (name: string) => boolean;
  /** Called with a line of progress for the operator. */
  readonly progress?: (message: string, details?: Record<string, unknown>) => void;
}

export interface GcReport {
  readonly dryRun: boolean;
  readonly repositories: number;
  readonly manifestsKept: number;
  readonly manifestsRemoved: { repository: string; digest: string }[];
  readonly layerLinksRemoved: { repository: string; digest: string }[];
  readonly blobsRemoved: { digest: string; size: number }[];
  readonly bytesFreed: number;
}

interface Link {
  readonly digest: Digest;
  readonly mtimeMs: number;
}

async function listLinks(driver: StorageDriver, dir: string): Promise<Link[]> {
  const links: Link[] = [];
  for (const algorithm of await driver.list(dir)) {
    if (!Object.hasOwn(DIGEST_ALGORITHMS, algorithm)) continue;
    for (const hex of await driver.list(`${dir}/${algorithm}`)) {
      const stat = await driver.stat(`${dir}/${algorithm}/${hex}`);
      if (stat === undefined || stat.isDirectory) continue;
      try {
        links.push({ digest: parseDigest(`${algorithm}:${hex}`), mtimeMs: stat.mtimeMs });
      } catch {
        // not a link of ours: leave it alone
      }
    }
  }
  return links;
}

export async function collectGarbage(driver: StorageDriver, options: GcOptions): Promise<GcReport> {
  const now = options.now ?? Date.now;
  const progress = options.progress ?? (() => undefined);
  const cutoff = now() - options.gracePeriodMs;
  const content = new Content(driver, new Blobs(driver));
  const report: { -readonly [K in keyof GcReport]: GcReport[K] } = {
    dryRun: options.dryRun,
    repositories: 0,
    manifestsKept: 0,
    manifestsRemoved: [],
    layerLinksRemoved: [],
    blobsRemoved: [],
    bytesFreed: 0,
  };
  /** Digests some kept link still names, over all repositories. */
  const referenced = new Set<string>();

  const repositories = await content.repositories();
  progress('scanning repositories', { count: repositories.length });
  for (const name of repositories) {
    report.repositories += 1;
    const revisions = await listLinks(driver, revisionsDir(name));
    const layers = await listLinks(driver, layersDir(name));
    if (options.keepRepository?.(name) === true) {
      for (const link of [...revisions, ...layers]) referenced.add(link.digest.value);
      report.manifestsKept += revisions.length;
      continue;
    }
    const markedManifests = new Set<string>();
    const markedBlobs = new Set<string>();
    const queue: Digest[] = [];
    for (const tag of await driver.list(tagsDir(name))) {
      const target = await driver.readFile(tagPath(name, tag));
      if (target !== undefined) queue.push(parseDigest(target.toString('utf8')));
    }
    for (const link of revisions) if (link.mtimeMs > cutoff) queue.push(link.digest);

    while (queue.length > 0) {
      const digest = queue.pop()!;
      if (markedManifests.has(digest.value)) continue;
      markedManifests.add(digest.value);
      const mediaType = (await driver.readFile(revisionLinkPath(name, digest)))?.toString('utf8');
      const body = await driver.readFile(blobPath(digest));
      if (mediaType !== undefined && body !== undefined) {
        try {
          const manifest = parseManifest(body, mediaType);
          for (const blob of manifest.blobs) markedBlobs.add(blob.value);
          queue.push(...manifest.manifests);
        } catch {
          // unparseable stored manifest: keep it (marked) and what we cannot read
        }
      }
      for (const entry of await driver.list(referrersDir(name, digest))) {
        const separator = entry.indexOf('-');
        queue.push(parseDigest(`${entry.slice(0, separator)}:${entry.slice(separator + 1)}`));
      }
    }

    for (const link of revisions) {
      if (markedManifests.has(link.digest.value)) {
        report.manifestsKept += 1;
        referenced.add(link.digest.value);
        continue;
      }
      if (!options.dryRun) {
        const fresh = await driver.stat(revisionLinkPath(name, link.digest));
        if (fresh !== undefined && fresh.mtimeMs > cutoff) {
          referenced.add(link.digest.value); // referenced by a push since we listed it
          continue;
        }
      }
      report.manifestsRemoved.push({ repository: name, digest: link.digest.value });
      progress('manifest unreferenced', { repository: name, digest: link.digest.value });
      if (options.dryRun) continue;
      const mediaType = (await driver.readFile(revisionLinkPath(name, link.digest)))?.toString('utf8');
      const body = await driver.readFile(blobPath(link.digest));
      await driver.delete(revisionLinkPath(name, link.digest));
      if (mediaType !== undefined && body !== undefined) {
        try {
          const subject = parseManifest(body, mediaType).subject;
          if (subject !== undefined) await driver.delete(referrerPath(name, subject, link.digest));
        } catch {
          // nothing more to clean for a manifest we cannot parse
        }
      }
    }
    for (const link of layers) {
      if (markedBlobs.has(link.digest.value) || link.mtimeMs > cutoff) {
        referenced.add(link.digest.value);
        continue;
      }
      if (!options.dryRun) {
        const fresh = await driver.stat(layerLinkPath(name, link.digest));
        if (fresh !== undefined && fresh.mtimeMs > cutoff) {
          referenced.add(link.digest.value); // touched by a push since we listed it
          continue;
        }
        await driver.delete(layerLinkPath(name, link.digest));
      }
      report.layerLinksRemoved.push({ repository: name, digest: link.digest.value });
    }
    progress('repository done', {
      repository: name,
      manifests: revisions.length,
      layers: layers.length,
    });
  }

  progress('sweeping blobs');
  for (const algorithm of await driver.list(BLOBS_DIR)) {
    if (!Object.hasOwn(DIGEST_ALGORITHMS, algorithm)) continue;
    for (const prefix of await driver.list(`${BLOBS_DIR}/${algorithm}`)) {
      for (const hex of await driver.list(`${BLOBS_DIR}/${algorithm}/${prefix}`)) {
        let digest: Digest;
        try {
          digest = parseDigest(`${algorithm}:${hex}`);
        } catch {
          continue;
        }
        if (referenced.has(digest.value)) continue;
        const stat = await driver.stat(blobPath(digest));
        if (stat === undefined || stat.mtimeMs > cutoff) continue;
        if (!options.dryRun) await driver.delete(blobPath(digest));
        report.blobsRemoved.push({ digest: digest.value, size: stat.size });
        report.bytesFreed += stat.size;
      }
    }
  }
  progress(options.dryRun ? 'dry run finished: nothing removed' : 'finished', {
    manifestsRemoved: report.manifestsRemoved.length,
    layerLinksRemoved: report.layerLinksRemoved.length,
    blobsRemoved: report.blobsRemoved.length,
    bytesFreed: report.bytesFreed,
  });
  return report;
}
