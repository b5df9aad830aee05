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
import { listLinks, type Link } from './links.js';
import { parseManifest, type ParsedManifest } from './manifests.js';
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

type MutableReport = { -readonly [K in keyof GcReport]: GcReport[K] };

/** One run: the options, the clock's cutoff, and what the phases found and removed so far. */
interface Run {
  readonly driver: StorageDriver;
  readonly options: GcOptions;
  readonly cutoff: number;
  readonly report: MutableReport;
  /** Digests some kept link still names, over all repositories (filled by the link sweeps). */
  readonly referenced: Set<string>;
  readonly progress: NonNullable<GcOptions['progress']>;
}

/** What mark found reachable in one repository. */
interface Marked {
  readonly manifests: Set<string>;
  readonly blobs: Set<string>;
}

export async function collectGarbage(driver: StorageDriver, options: GcOptions): Promise<GcReport> {
  const now = options.now ?? Date.now;
  const run: Run = {
    driver,
    options,
    cutoff: now() - options.gracePeriodMs,
    report: {
      dryRun: options.dryRun,
      repositories: 0,
      manifestsKept: 0,
      manifestsRemoved: [],
      layerLinksRemoved: [],
      blobsRemoved: [],
      bytesFreed: 0,
    },
    referenced: new Set<string>(),
    progress: options.progress ?? (() => undefined),
  };

  const repositories = await new Content(driver, new Blobs(driver)).repositories();
  run.progress('scanning repositories', { count: repositories.length });
  for (const name of repositories) {
    run.report.repositories += 1;
    const revisions = await listLinks(driver, revisionsDir(name));
    const layers = await listLinks(driver, layersDir(name));
    if (options.keepRepository?.(name) === true) {
      keepRepository(run, revisions, layers);
      continue;
    }
    const marked = await mark(run, name, revisions);
    await sweepManifests(run, name, revisions, marked);
    await sweepLayerLinks(run, name, layers, marked);
    run.progress('repository done', { repository: name, manifests: revisions.length, layers: layers.length });
  }
  run.progress('sweeping blobs');
  await sweepBlobs(run);
  run.progress(options.dryRun ? 'dry run finished: nothing removed' : 'finished', {
    manifestsRemoved: run.report.manifestsRemoved.length,
    layerLinksRemoved: run.report.layerLinksRemoved.length,
    blobsRemoved: run.report.blobsRemoved.length,
    bytesFreed: run.report.bytesFreed,
  });
  return run.report;
}

/** A repository gc leaves alone (the proxy's cache): every link in it counts as kept and referenced. */
function keepRepository(run: Run, revisions: readonly Link[], layers: readonly Link[]): void {
  for (const link of [...revisions, ...layers]) run.referenced.add(link.digest.value);
  run.report.manifestsKept += revisions.length;
}

/**
 * Mark: tags and young revisions are roots; follow index children, config and layers, and the
 * referrers of every kept manifest.
 */
async function mark(run: Run, name: string, revisions: readonly Link[]): Promise<Marked> {
  const { driver } = run;
  const marked: Marked = { manifests: new Set(), blobs: new Set() };
  const queue: Digest[] = [];
  for (const tag of await driver.list(tagsDir(name))) {
    const target = await driver.readFile(tagPath(name, tag));
    if (target !== undefined) queue.push(parseDigest(target.toString('utf8')));
  }
  for (const link of revisions) if (link.mtimeMs > run.cutoff) queue.push(link.digest);

  while (queue.length > 0) {
    const digest = queue.pop()!;
    if (marked.manifests.has(digest.value)) continue;
    marked.manifests.add(digest.value);
    const manifest = await readManifest(driver, name, digest);
    if (manifest !== undefined) {
      for (const blob of manifest.blobs) marked.blobs.add(blob.value);
      queue.push(...manifest.manifests);
    }
    for (const entry of await driver.list(referrersDir(name, digest))) {
      const separator = entry.indexOf('-');
      queue.push(parseDigest(`${entry.slice(0, separator)}:${entry.slice(separator + 1)}`));
    }
  }
  return marked;
}

/** A stored manifest of `name`, or undefined when missing or unparseable (then kept, unread). */
async function readManifest(
  driver: StorageDriver,
  name: string,
  digest: Digest,
): Promise<ParsedManifest | undefined> {
  const mediaType = (await driver.readFile(revisionLinkPath(name, digest)))?.toString('utf8');
  const body = await driver.readFile(blobPath(digest));
  if (mediaType === undefined || body === undefined) return undefined;
  try {
    return parseManifest(body, mediaType);
  } catch {
    return undefined;
  }
}

/** Sweep manifests: unmarked revision links (and their referrer entries) not refreshed since listing. */
async function sweepManifests(run: Run, name: string, revisions: readonly Link[], marked: Marked) {
  const { driver, report, referenced } = run;
  for (const link of revisions) {
    if (marked.manifests.has(link.digest.value)) {
      report.manifestsKept += 1;
      referenced.add(link.digest.value);
      continue;
    }
    if (!run.options.dryRun && (await refreshedSince(run, revisionLinkPath(name, link.digest)))) {
      referenced.add(link.digest.value); // referenced by a push since we listed it
      continue;
    }
    report.manifestsRemoved.push({ repository: name, digest: link.digest.value });
    run.progress('manifest unreferenced', { repository: name, digest: link.digest.value });
    if (run.options.dryRun) continue;
    const subject = (await readManifest(driver, name, link.digest))?.subject;
    await driver.delete(revisionLinkPath(name, link.digest));
    if (subject !== undefined) await driver.delete(referrerPath(name, subject, link.digest));
  }
}

/** Sweep layer links: unmarked links older than the grace period and not refreshed since listing. */
async function sweepLayerLinks(run: Run, name: string, layers: readonly Link[], marked: Marked) {
  const { driver, report, referenced } = run;
  for (const link of layers) {
    if (marked.blobs.has(link.digest.value) || link.mtimeMs > run.cutoff) {
      referenced.add(link.digest.value);
      continue;
    }
    if (!run.options.dryRun) {
      if (await refreshedSince(run, layerLinkPath(name, link.digest))) {
        referenced.add(link.digest.value); // touched by a push since we listed it
        continue;
      }
      await driver.delete(layerLinkPath(name, link.digest));
    }
    report.layerLinksRemoved.push({ repository: name, digest: link.digest.value });
  }
}

/** Sweep blobs: every blob no kept link names and that is itself older than the grace period. */
async function sweepBlobs(run: Run): Promise<void> {
  const { driver, report } = run;
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
        if (run.referenced.has(digest.value)) continue;
        const stat = await driver.stat(blobPath(digest));
        if (stat === undefined || stat.mtimeMs > run.cutoff) continue;
        if (!run.options.dryRun) await driver.delete(blobPath(digest));
        report.blobsRemoved.push({ digest: digest.value, size: stat.size });
        report.bytesFreed += stat.size;
      }
    }
  }
}

/** Re-reads a link's mtime right before deleting it: a push may have refreshed it meanwhile. */
async function refreshedSince(run: Run, path: string): Promise<boolean> {
  const fresh = await run.driver.stat(path);
  return fresh !== undefined && fresh.mtimeMs > run.cutoff;
}
