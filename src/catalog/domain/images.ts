import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../../shared/logger.js';
import { NotFoundError, ValidationError } from '../errors.js';
import type { CrawlOutcome, CrawlSettings } from '../health/crawl.js';
import { checkImagePath } from '../language/image-fields.js';
import { parseFilter } from '../language/query-language.js';
import type {
  ContainerImage,
  ContainerRegistry,
  CrawlReport,
  Filter,
  HealthStatus,
  ProbeTarget,
} from '../model.js';
import { QueryRejectedError, type VersionedText } from '../store/collection.js';
import { ContentCache } from './content-cache.js';
import type { HealthStore } from '../store/health-store.js';
import {
  DIGEST_KEYS,
  imageId,
  PLATFORM_KEYS,
  type ImageStore,
  type SeenImage,
} from '../store/image-store.js';
import { parseId, parsePage, type Page } from './parameters.js';
import { probeTargetOf } from './probe-target.js';
import type { RegistryService } from './registries.js';

/** Crawls one registry (health/crawl.ts behind the crawler's limits; injected so app.ts wires it). */
export type CrawlFunction = (
  target: ProbeTarget,
  settings: Omit<CrawlSettings, 'maxManifestBytes'>,
) => Promise<CrawlOutcome>;

export interface ImageServiceDeps {
  readonly store: ImageStore;
  readonly registries: RegistryService;
  /** Last probe of each registry (status, latency) for ranking; absent without health checking. */
  readonly healthStore?: HealthStore;
  readonly crawl: CrawlFunction;
  readonly logger: Logger;
  readonly metrics: Registry;
  readonly now?: () => number;
  /** Told what each crawl added and removed (`image.discovered`, `image.removed`). */
  readonly onCrawled?: (
    registryId: string,
    discovered: readonly ContainerImage[],
    removed: readonly ContainerImage[],
  ) => Promise<void>;
}

/** A registry's `container_registry_config.crawl`, with defaults. */
export interface CrawlConfig {
  readonly enabled: boolean;
  readonly repositories?: readonly string[];
  readonly intervalMs?: number;
}

export interface ResolveRequest {
  readonly reference?: unknown;
  readonly digest?: unknown;
  readonly platform?: unknown;
  readonly signed?: boolean;
}

export interface Candidate {
  container_registry_id: string;
  container_registry_name: string;
  pull_reference: string;
  digest: string;
  status: HealthStatus | null;
  latency_ms: number | null;
  last_seen: string;
}

const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const MAX_CANDIDATES = 100;

/**
 * The image index (DESIGN.md section 8): queries over image records, the resolver, and crawls
 * turned into records. Only a complete crawl removes records it did not see.
 */
export class ImageService {
  private readonly running = new Map<string, Promise<CrawlReport>>();
  private readonly now: () => number;
  private readonly duration: Histogram<'complete'>;
  private readonly requests: Counter;
  private readonly errors: Counter;
  private readonly records: Gauge<'registry_id'>;
  /**
   * Each candidate's registry name, kept under the registry's stored text and version: a resolve
   * reads every candidate's registry, and parsing the document each time (up to 1 MB) was most
   * of a resolve's own cost. The store is still read, so a rename shows at once.
   */
  private readonly registryNames = new ContentCache<string>({ totalChars: 8 << 20, entryChars: 64 << 10 });

  constructor(private readonly deps: ImageServiceDeps) {
    this.now = deps.now ?? Date.now;
    this.duration = new Histogram({
      name: 'catalog_crawl_duration_seconds',
      help: 'Duration of registry crawls, by whether they were complete',
      labelNames: ['complete'],
      buckets: [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900],
      registers: [deps.metrics],
    });
    this.requests = new Counter({
      name: 'catalog_crawl_requests_total',
      help: 'HTTP requests sent by crawls (registries and token realms)',
      registers: [deps.metrics],
    });
    this.errors = new Counter({
      name: 'catalog_crawl_errors_total',
      help: 'Errors reported by crawls',
      registers: [deps.metrics],
    });
    this.records = new Gauge({
      name: 'catalog_image_records',
      help: 'Image records of a registry after its last crawl',
      labelNames: ['registry_id'],
      registers: [deps.metrics],
    });
  }

  /** `POST /container_images`: a filter over image records; `onlyRegistryIds` narrows to some registries. */
  async query(
    body: unknown,
    page: Page,
    onlyRegistryIds?: readonly string[],
  ): Promise<{ items: ContainerImage[]; total: number }> {
    const parsed = parseFilter(body, checkImagePath);
    return this.find(parsed, page, onlyRegistryIds);
  }

  /** `GET /container_registry/<id>/images`. */
  async ofRegistry(rawId: string, page: Page): Promise<{ items: ContainerImage[]; total: number }> {
    const { document } = await this.deps.registries.get(rawId);
    return this.find({ container_registry_id: document.container_registry_id }, page);
  }

  /** `GET /resolve_image`: who holds the image, best candidate first; 404 when nobody does. */
  async resolve(request: ResolveRequest): Promise<{ reference: string; candidates: Candidate[] }> {
    const { filter, reference } = resolveFilter(request);
    const records = await this.deps.store.find(filter, {
      sort: [['last_seen', -1]],
      skip: 0,
      limit: MAX_CANDIDATES,
    });
    // Each candidate registry's document and last check, in one read each for all of them.
    const ids = [...new Set(records.map((record) => record.container_registry_id))];
    const [stored, checks] = await Promise.all([
      this.deps.registries.getTexts(ids),
      this.deps.healthStore?.lastChecks(ids),
    ]);
    const candidates: Candidate[] = [];
    for (const record of records) {
      const id = record.container_registry_id;
      const registry = stored.get(id);
      if (!registry) continue; // deleted meanwhile
      const check = checks?.get(id);
      candidates.push({
        container_registry_id: id,
        container_registry_name: this.registryName(id, registry),
        pull_reference: record.pull_reference,
        digest: record.digest,
        status: check?.status ?? null,
        latency_ms: check?.latency_ms ?? null,
        last_seen: record.last_seen,
      });
    }
    if (candidates.length === 0) throw new NotFoundError(reference, `No registry holds ${reference}`);
    candidates.sort(
      (a, b) =>
        Number(b.status === 'healthy') - Number(a.status === 'healthy') ||
        (a.latency_ms ?? Infinity) - (b.latency_ms ?? Infinity) ||
        (a.last_seen < b.last_seen ? 1 : a.last_seen > b.last_seen ? -1 : 0),
    );
    return { reference, candidates };
  }

  /** `POST /container_registry/<id>/crawl`: crawls now (joining a crawl already running). */
  async crawlNow(rawId: string): Promise<CrawlReport> {
    const { document } = await this.deps.registries.get(rawId);
    return this.crawl(document);
  }

  /** `GET /container_registry/<id>/crawl`: the last report. */
  async lastReport(rawId: string): Promise<CrawlReport> {
    const id = parseId(rawId);
    await this.deps.registries.get(id);
    const report = await this.deps.store.report(id);
    if (!report) throw new NotFoundError(id, `Container registry ${id} has not been crawled yet`);
    return report;
  }

  /** Crawls one registry document and writes what it saw (one crawl per registry at a time). */
  crawl(document: ContainerRegistry): Promise<CrawlReport> {
    const id = document.container_registry_id;
    const running = this.running.get(id);
    if (running) return running;
    const crawl = this.runCrawl(document).finally(() => this.running.delete(id));
    this.running.set(id, crawl);
    return crawl;
  }

  /** Drops the records and report of a deleted registry. */
  async forget(registryId: string): Promise<void> {
    this.records.remove({ registry_id: registryId });
    await this.deps.store.forget(registryId);
  }

  private async runCrawl(document: ContainerRegistry): Promise<CrawlReport> {
    const id = document.container_registry_id;
    const started = this.now();
    const config = crawlConfigOf(document);
    const target = probeTargetOf(document, this.deps.registries, this.deps.logger);
    const outcome = await this.deps.crawl(target, {
      repositories: config.repositories,
      // Unchanged tags keep their records without their manifests being read again.
      known: (repository) => this.deps.store.knownTags(id, repository),
    });
    const seenAt = new Date(this.now()).toISOString();
    const host = pullHost(document);
    const records: SeenImage[] = outcome.images.map((image) => ({
      container_registry_id: id,
      repository: image.repository,
      tag: image.tag,
      digest: image.digest,
      media_type: image.media_type,
      platforms: image.platforms,
      size: image.size,
      pull_reference: `${host}/${image.repository}:${image.tag}`,
      referrers: image.referrers,
      referrers_read_at: image.referrers_read_at,
      first_seen: seenAt,
      last_seen: seenAt,
      source: 'crawl',
    }));
    const discovered: ContainerImage[] = [];
    const gone: ContainerImage[] = [];
    const { added, updated } = await this.deps.store.writeSeen(records, discovered);
    const removed = outcome.complete
      ? await this.deps.store.removeUnseen(id, new Set(records.map(imageId)), gone)
      : 0;
    if (discovered.length + gone.length > 0) await this.deps.onCrawled?.(id, discovered, gone);
    const report: CrawlReport = {
      container_registry_id: id,
      started_at: new Date(started).toISOString(),
      repositories: outcome.repositories,
      tags: outcome.tags,
      added,
      updated,
      removed,
      requests: outcome.requests,
      errors: outcome.errors,
      complete: outcome.complete,
      duration_ms: Math.max(0, Math.round(this.now() - started)),
    };
    await this.deps.store.saveReport(report);
    this.duration.observe({ complete: String(report.complete) }, report.duration_ms / 1000);
    this.requests.inc(report.requests);
    this.errors.inc(report.errors.length);
    this.records.set({ registry_id: id }, await this.deps.store.count({ container_registry_id: id }));
    this.deps.logger.info(
      { registryId: id, complete: report.complete, added, updated, removed, errors: report.errors.length },
      'registry crawled',
    );
    return report;
  }

  private registryName(id: string, stored: VersionedText): string {
    return (
      this.registryNames.get(id, stored) ??
      this.registryNames.set(
        id,
        stored,
        this.deps.registries.decode(stored).document.container_registry_name,
        0,
      )
    );
  }

  private async find(
    filter: Filter,
    page: Page,
    onlyRegistryIds?: readonly string[],
  ): Promise<{ items: ContainerImage[]; total: number }> {
    const byRegistry = onlyRegistryIds && { container_registry_id: { $in: onlyRegistryIds } };
    const combined = !byRegistry
      ? filter
      : Object.keys(filter).length === 0
        ? byRegistry
        : { $and: [filter, byRegistry] };
    try {
      return await this.deps.store.findPage(combined, page);
    } catch (error) {
      if (error instanceof QueryRejectedError) throw new ValidationError(`Invalid filter: ${error.message}`);
      throw error;
    }
  }
}

/** `limit`, `skip` and `sort` over image record fields. */
export function parseImagePage(query: { limit?: unknown; skip?: unknown; sort?: unknown }): Page {
  return parsePage(query, checkImagePath);
}

/** `container_registry_config.crawl` of a document (validated by the registry schema). */
export function crawlConfigOf(document: ContainerRegistry): CrawlConfig {
  const crawl = (document.container_registry_config.crawl ?? {}) as Record<string, unknown>;
  return {
    enabled: crawl.enabled !== false,
    repositories: Array.isArray(crawl.repositories) ? (crawl.repositories as string[]) : undefined,
    intervalMs: typeof crawl.interval_ms === 'number' ? crawl.interval_ms : undefined,
  };
}

/** `<image prefix or URL host>`: what pull references start with. */
export function pullHost(document: ContainerRegistry): string {
  const prefix = document.container_registry_image_prefix.replace(/\/+$/, '');
  if (prefix !== '') return prefix;
  try {
    return new URL(document.container_registry_public_url).host;
  } catch {
    return document.container_registry_public_url;
  }
}

/** The filter `GET /resolve_image` runs, from its parameters (400 on anything malformed). */
function resolveFilter(request: ResolveRequest): { filter: Filter; reference: string } {
  const bad = (pointer: string, message: string) =>
    ValidationError.of([{ pointer, message }], `Invalid ${pointer.slice(1)}`);
  const conditions: Filter[] = [];
  let reference: string;
  if (request.reference !== undefined && request.digest !== undefined)
    throw bad('/reference', 'give either reference or digest, not both');
  if (typeof request.digest === 'string') {
    if (!DIGEST.test(request.digest)) throw bad('/digest', 'must be a digest such as sha256:<64 hex>');
    // Its own record and every index listing it as a child (a platform-specific digest).
    conditions.push({ [DIGEST_KEYS]: request.digest });
    reference = request.digest;
  } else if (typeof request.reference === 'string' && request.reference.length <= 512) {
    reference = request.reference;
    const at = reference.lastIndexOf('@');
    if (at > 0) {
      const repository = reference.slice(0, at);
      const digest = reference.slice(at + 1);
      if (!REPOSITORY.test(repository) || !DIGEST.test(digest))
        throw bad('/reference', 'must be <repository>:<tag> or <repository>@<digest>');
      conditions.push({ [DIGEST_KEYS]: digest }, { repository });
    } else {
      const colon = reference.lastIndexOf(':');
      const tagged = colon > reference.lastIndexOf('/');
      const repository = tagged ? reference.slice(0, colon) : reference;
      // Like docker: no tag means `latest`.
      const tag = tagged ? reference.slice(colon + 1) : 'latest';
      if (!REPOSITORY.test(repository) || !TAG.test(tag))
        throw bad('/reference', 'must be <repository>:<tag> or <repository>@<digest>');
      conditions.push({ repository }, { tag });
      if (!tagged) reference = `${repository}:latest`;
    }
  } else {
    throw bad('/reference', 'give reference=<repository>:<tag> or <repository>@<digest>, or digest=');
  }
  if (request.platform !== undefined) {
    const parts = typeof request.platform === 'string' ? request.platform.split('/') : [];
    if (parts.length < 2 || parts.length > 3 || parts.some((part) => !/^[\w.-]{1,64}$/.test(part)))
      throw bad('/platform', 'must be os/architecture[/variant], e.g. linux/arm64');
    // One platform entry must match os, architecture (and variant): kept as keys in the store.
    conditions.push({ [PLATFORM_KEYS]: parts.join('/') });
  }
  if (request.signed) conditions.push({ 'referrers.signatures': { $gt: 0 } });
  return { filter: conditions.length === 1 ? conditions[0]! : { $and: conditions }, reference };
}
