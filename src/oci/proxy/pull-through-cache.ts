/**
 * The pull-through cache: repository names under a configured prefix are served from an
 * upstream registry and kept byte for byte under the local name.
 *
 *   manifest by tag     one bounded HEAD upstream; same digest as cached: served from cache;
 *                       new digest: GET by digest, verified, stored, tag moved; upstream
 *                       timeout/429/5xx/connection error/401 (or circuit open): the cached tag,
 *                       if confirmed within max_stale_seconds, with a `Warning` header
 *   manifest by digest  local once cached; else GET upstream, verified, stored
 *   blob                local once cached; else one single-flight fetch (`blob-fetcher.ts`)
 *   referrers           upstream's answer, cached; on failure (or an upstream without the API)
 *                       the cached answer or what is known locally
 *
 * Nothing is converted: bytes, media type and digest are the upstream's. Nothing becomes
 * visible before its digest is verified (manifests are checked in memory, blobs on the way).
 * A manifest fetched from upstream is answered once verified, while its files (bytes, revision
 * link, tag: each fsynced, in that order) are written: those fsyncs were most of a cold pull's
 * time to first byte. Until they are written, lookups of it are answered from memory.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../../shared/logger.js';
import type { Blobs } from '../domain/blobs.js';
import type { Content, ReferrersIndex, StoredManifest } from '../domain/content.js';
import {
  MANIFEST_MEDIA_TYPES,
  MEDIA_TYPES,
  baseMediaType,
  parseManifest,
  type Descriptor,
} from '../domain/manifests.js';
import { parseDigest, validateName, type Digest } from '../domain/names.js';
import { OciError } from '../errors.js';
import type { StorageDriver } from '../storage/driver.js';
import { FsDriver } from '../storage/fs-driver.js';
import { blobPath, layerLinkPath, referrerPath, revisionLinkPath, tagPath } from '../storage/layout.js';
import { BlobFetcher, type Flight, type UpstreamBody } from './blob-fetcher.js';
import { CircuitBreaker } from './circuit-breaker.js';
import type { UpstreamConfig } from './config.js';
import { proxyReferrersPath } from './layout.js';
import type { ProxyMetrics } from './metrics.js';
import {
  UpstreamClient,
  UpstreamFailure,
  failureOfResponse,
  failureOfStatus,
  type FailureReason,
} from './upstream-client.js';

/** What the upstream is asked to send: every manifest type we store, nothing converted. */
const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifest,
].join(', ');

/** Failures on which a cached tag is served stale (DESIGN: timeout, 429, 5xx, connection, 401). */
const STALE_REASONS = new Set<FailureReason>([
  'timeout',
  'connection',
  'rate-limited',
  'server-error',
  'unauthorized',
  'circuit-open',
]);

/** Link mtimes (last pull) are refreshed at most this often per link. */
const REFRESH_INTERVAL_MS = 60_000;
const REFRESH_MEMORY_LIMIT = 100_000;

/** One upstream: its settings, client and breaker. */
export interface Upstream {
  readonly config: UpstreamConfig;
  readonly client: UpstreamClient;
  readonly breaker: CircuitBreaker;
}

/** A request's repository resolved to an upstream. */
export interface ProxyTarget {
  readonly upstream: Upstream;
  /** Name under which the content is cached here (`mirror/library/redis`). */
  readonly local: string;
  /** Name at the upstream (`library/redis`). */
  readonly remote: string;
}

/** A manifest answer; `warning` is set when it is a stale copy served because the upstream failed. */
export interface ProxiedManifest {
  readonly manifest: StoredManifest;
  readonly warning?: string;
}

export interface PullThroughCacheDeps {
  readonly upstreams: readonly UpstreamConfig[];
  readonly driver: StorageDriver;
  readonly blobs: Blobs;
  readonly content: Content;
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  readonly maxManifestBytes: number;
  /** Largest blob taken from an upstream (the push limit applies to proxied blobs too). */
  readonly maxBlobBytes: number;
  readonly now: () => number;
  /** Local directory for spool files on storage other than the filesystem (default: the OS temp dir). */
  readonly spoolDir?: string;
}

/**
 * A manifest's whole GET, body included, must end within this many upstream timeouts (10 s by
 * default): the header deadline alone would let a body that stalls hold a pull forever.
 */
const MANIFEST_BODY_TIMEOUTS = 5;

/** A `Docker-Content-Digest` header's digest; undefined when absent or malformed. */
function digestHeader(header: string | null): Digest | undefined {
  try {
    return header === null ? undefined : parseDigest(header);
  } catch {
    return undefined;
  }
}

function isDockerHub(host: string): boolean {
  return host === 'registry-1.docker.io' || host === 'index.docker.io' || host === 'docker.io';
}

async function readLimited(response: Response, limit: number): Promise<Buffer> {
  return readBodyLimited(
    Number(response.headers.get('content-length') ?? '0'),
    (response.body ?? []) as AsyncIterable<Uint8Array>,
    async () => void (await response.body?.cancel()),
    limit,
  );
}

/** A body of at most `limit` bytes (`declared`: its Content-Length, 0 when unknown). */
async function readBodyLimited(
  declared: number,
  body: AsyncIterable<Uint8Array>,
  cancel: () => Promise<void>,
  limit: number,
): Promise<Buffer> {
  if (declared > limit) {
    await cancel();
    throw new OciError('ManifestTooLarge', 'upstream manifest exceeds the size limit', { limit });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const part of body) {
    size += part.byteLength;
    if (size > limit)
      throw new OciError('ManifestTooLarge', 'upstream manifest exceeds the size limit', { limit });
    chunks.push(Buffer.from(part));
  }
  return Buffer.concat(chunks);
}

export class PullThroughCache {
  readonly upstreams: readonly Upstream[];
  readonly fetcher: BlobFetcher;
  private readonly refreshed = new Map<string, number>();
  /** The last failure per upstream prefix, quoted while its circuit is open. */
  private readonly lastFailure = new Map<string, string>();
  /**
   * Tag lookups in progress: concurrent pulls of one tag share one upstream HEAD. An entry stays
   * until the tag is written, so a pull meanwhile does not ask the upstream again.
   */
  private readonly tagLookups = new Map<string, Promise<ProxiedManifest>>();
  /** Manifests verified and answered whose files are still being written, by `name@digest`. */
  private readonly storing = new Map<string, StoredManifest>();
  /** Writes under way after their answer (`inBackground`). */
  private readonly background = new Set<Promise<void>>();

  constructor(private readonly deps: PullThroughCacheDeps) {
    this.upstreams = deps.upstreams.map((config) => ({
      config,
      client: new UpstreamClient(config, deps.now),
      breaker: new CircuitBreaker(deps.now),
    }));
    // The fs driver's temp file is readable while it grows; elsewhere (S3) late readers need a
    // local spool.
    const spoolDir =
      deps.driver instanceof FsDriver
        ? undefined
        : (deps.spoolDir ?? path.join(os.tmpdir(), 'aios-registry-proxy'));
    this.fetcher = new BlobFetcher(deps.driver, deps.logger, deps.maxBlobBytes, spoolDir);
  }

  /** Whether a repository name lies under a proxy prefix (writes there are refused). */
  isProxied(name: string): boolean {
    return this.upstreams.some((upstream) => name.startsWith(upstream.config.prefix));
  }

  /**
   * The upstream a request addresses: by prefix, or by containerd's `?ns=<host>` (then the name
   * is the upstream's and the prefix is added locally, so both ways share one cache).
   */
  route(name: string, ns: string | null): ProxyTarget | undefined {
    if (ns !== null && ns !== '') {
      const host = ns.toLowerCase();
      const upstream = this.upstreams.find(
        (candidate) =>
          candidate.config.host === host || (isDockerHub(host) && isDockerHub(candidate.config.host)),
      );
      if (upstream !== undefined && !name.startsWith(upstream.config.prefix)) {
        return { upstream, local: validateName(`${upstream.config.prefix}${name}`), remote: name };
      }
    }
    const upstream = this.upstreams.find((candidate) => name.startsWith(candidate.config.prefix));
    if (upstream === undefined) return undefined;
    return { upstream, local: name, remote: name.slice(upstream.config.prefix.length) };
  }

  /** Resolves a manifest reference through the cache (see the module comment). */
  async manifest(
    target: ProxyTarget,
    reference: { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest },
  ): Promise<ProxiedManifest> {
    if (reference.kind === 'digest') {
      const cached = await this.cachedManifest(target.local, reference.digest);
      if (cached !== undefined) {
        this.count(target, 'manifest', 'hit');
        return { manifest: cached };
      }
      const { manifest, stored } = await this.guard(target, () =>
        this.fetchManifest(target, reference.digest.value, reference.digest),
      );
      this.storedInBackground(stored, target, reference.digest.value);
      this.count(target, 'manifest', 'miss');
      return { manifest };
    }
    const key = `${target.local}:${reference.tag}`;
    const running = this.tagLookups.get(key);
    if (running !== undefined) return running;
    let stored: Promise<void> | undefined;
    const lookup = this.manifestByTag(target, reference.tag, (writes) => (stored = writes));
    this.tagLookups.set(key, lookup);
    lookup
      .then(
        () => stored,
        () => undefined,
      )
      .finally(() => this.tagLookups.delete(key))
      .catch(() => undefined);
    return lookup;
  }

  /** Logs a failure of writes that run after the answer (the next pull fetches it again). */
  private storedInBackground(stored: Promise<void>, target: ProxyTarget, reference: string): void {
    this.inBackground(stored, (error) =>
      this.deps.logger.warn(
        { err: error, repository: target.local, reference },
        'writing a proxied manifest failed',
      ),
    );
  }

  /** Keeps `work` (a write that goes on after an answer) until it ends, for `settled`. */
  private inBackground(work: Promise<unknown>, onError: (error: unknown) => void): void {
    const tracked: Promise<void> = work.then(
      () => void this.background.delete(tracked),
      (error: unknown) => {
        this.background.delete(tracked);
        onError(error);
      },
    );
    this.background.add(tracked);
  }

  /**
   * Resolves once every write begun after an answer so far has ended (manifest files, tags,
   * last-pull times): a graceful shutdown waits for it, so a SIGTERM does not cut them short.
   */
  async settled(): Promise<void> {
    while (this.background.size > 0) await Promise.all([...this.background]);
  }

  /**
   * `storing` is handed the writes that go on after the answer (the manifest's files and the
   * tag), when there are any.
   */
  private async manifestByTag(
    target: ProxyTarget,
    tag: string,
    storing: (writes: Promise<void>) => void,
  ): Promise<ProxiedManifest> {
    // The local lookup runs beside the HEAD: the upstream timeout is the whole budget.
    const lookup = this.cachedTag(target.local, tag);
    lookup.catch(() => undefined);
    const { config, client } = target.upstream;
    // The budget counts from here, so the local lookup (a busy disk) cannot stretch it.
    const deadline = performance.now() + config.upstreamTimeoutMs;
    // A manifest not held here: answered once fetched and verified; its files, then the tag,
    // are written after the answer.
    const fetchAndTag = async (reference: string, expected: Digest | undefined) => {
      const fetched = await this.fetchManifest(target, reference, expected);
      const writes = fetched.stored.then(() =>
        this.deps.driver.writeFile(tagPath(target.local, tag), fetched.manifest.digest.value),
      );
      this.storedInBackground(writes, target, tag);
      storing(writes);
      this.count(target, 'manifest', 'miss');
      return fetched.manifest;
    };
    let cached: Awaited<typeof lookup>;
    try {
      const manifest = await this.guard(target, async () => {
        // A tag never cached here: one GET by tag instead of a HEAD and a GET (a cold pull's
        // first round trip). The lookup is local (a stat when nothing is cached), so waiting for
        // it first costs the upstream budget next to nothing.
        if ((await lookup) === undefined) return fetchAndTag(tag, undefined);
        const head = await client.send({
          method: 'HEAD',
          path: `/v2/${target.remote}/manifests/${encodeURIComponent(tag)}`,
          accept: MANIFEST_ACCEPT,
          scope: `repository:${target.remote}:pull`,
          timeoutMs: Math.max(1, deadline - performance.now()),
        });
        if (head.status === 404)
          throw new OciError('ManifestUnknown', `upstream ${config.host} has no such tag`, { tag });
        if (head.status !== 200) throw failureOfStatus(config.host, head);
        cached = await lookup;
        const digest = digestHeader(head.headers.get('docker-content-digest'));
        if (cached !== undefined && digest?.value === cached.manifest.digest.value) {
          await this.deps.driver.refresh(tagPath(target.local, tag));
          this.touchRevision(target.local, digest);
          this.count(target, 'manifest', 'hit');
          return cached.manifest;
        }
        const known = digest === undefined ? undefined : await this.cachedManifest(target.local, digest);
        if (known !== undefined) {
          await this.deps.driver.writeFile(tagPath(target.local, tag), known.digest.value);
          this.count(target, 'manifest', 'hit');
          return known;
        }
        return fetchAndTag(digest?.value ?? tag, digest);
      });
      return { manifest };
    } catch (error) {
      if (!(error instanceof UpstreamFailure) || !STALE_REASONS.has(error.reason)) throw error;
      cached = await lookup;
      const ageSeconds = cached === undefined ? Infinity : (this.deps.now() - cached.confirmedAt) / 1000;
      if (cached === undefined || ageSeconds > config.maxStaleSeconds) throw error.toOciError();
      this.count(target, 'manifest', 'stale');
      this.touchRevision(target.local, cached.manifest.digest);
      const reason = error.message.replace(/"/g, "'");
      return {
        manifest: cached.manifest,
        warning: `110 - "Response is Stale (upstream ${config.host}: ${reason}; last confirmed ${Math.round(ageSeconds)} s ago)"`,
      };
    }
  }

  /**
   * Runs one upstream exchange under the circuit breaker: refused at once while it is open;
   * failures counted, logged (one line each) and turned into `UpstreamFailure`s.
   */
  private async guard<T>(target: ProxyTarget, exchange: () => Promise<T>): Promise<T> {
    const { config, breaker } = target.upstream;
    if (!breaker.allow()) {
      throw new UpstreamFailure('circuit-open', config.host, this.circuitOpenMessage(target));
    }
    try {
      const result = await exchange();
      breaker.success();
      return result;
    } catch (error) {
      if (error instanceof UpstreamFailure) this.upstreamFailed(target, error);
      else breaker.success(); // an answer (404, invalid manifest) means the upstream is up
      throw error;
    }
  }

  private circuitOpenMessage(target: ProxyTarget): string {
    const last = this.lastFailure.get(target.upstream.config.prefix) ?? 'failed';
    return `not asked: it failed repeatedly, last ${last} (circuit open)`;
  }

  private upstreamFailed(target: ProxyTarget, failure: UpstreamFailure): void {
    const { config, breaker } = target.upstream;
    this.lastFailure.set(config.prefix, failure.message);
    const wasOpen = breaker.open;
    breaker.failure();
    this.deps.metrics.upstreamErrors.inc({ upstream: config.host, reason: failure.reason });
    this.deps.logger.warn(
      {
        upstream: config.host,
        repository: target.remote,
        reason: failure.reason,
        ...(failure.status === undefined ? {} : { status: failure.status }),
        circuit: breaker.open ? 'open' : 'closed',
      },
      `upstream failure: ${failure.message}`,
    );
    if (!wasOpen && breaker.open) this.deps.logger.warn({ upstream: config.host }, 'upstream circuit opened');
  }

  private count(target: ProxyTarget, kind: string, result: 'hit' | 'miss' | 'stale'): void {
    this.deps.metrics.requests.inc({ upstream: target.upstream.config.host, kind, result });
  }

  /**
   * GETs a manifest upstream and verifies its digest; resolves with it once verified. `stored`
   * settles once its files are written (no tag); until then `cachedManifest` finds it in memory.
   */
  private async fetchManifest(
    target: ProxyTarget,
    reference: string,
    expected: Digest | undefined,
  ): Promise<{ manifest: StoredManifest; stored: Promise<void> }> {
    const { config, client } = target.upstream;
    // The header deadline does not cover the body: one that stalls is cut at this bound.
    const bodyDeadline = AbortSignal.timeout(MANIFEST_BODY_TIMEOUTS * config.upstreamTimeoutMs);
    const response = await client.stream({
      method: 'GET',
      path: `/v2/${target.remote}/manifests/${encodeURIComponent(reference)}`,
      accept: MANIFEST_ACCEPT,
      scope: `repository:${target.remote}:pull`,
      timeoutMs: config.upstreamTimeoutMs,
      signal: bodyDeadline,
    });
    const headers = response.body.headers;
    if (response.status === 404) {
      response.body.resume();
      throw new OciError('ManifestUnknown', `upstream ${config.host} has no such manifest`, { reference });
    }
    if (response.status !== 200) {
      response.body.resume();
      throw failureOfResponse(config.host, response.status, headers['retry-after']);
    }
    const body = await readBodyLimited(
      response.size ?? 0,
      response.body,
      async () => void response.body.destroy(),
      this.deps.maxManifestBytes,
    ).catch((error: unknown) => {
      response.body.destroy();
      if (error instanceof OciError) throw error;
      if (bodyDeadline.aborted)
        throw new UpstreamFailure('timeout', config.host, 'manifest body stalled past its deadline');
      throw new UpstreamFailure(
        'connection',
        config.host,
        `manifest body failed: ${(error as Error).message}`,
      );
    });
    this.deps.metrics.upstreamBytes.inc({ upstream: config.host }, body.length);
    // By tag, the upstream's Docker-Content-Digest is what the bytes must hash to.
    const digestValue = headers['docker-content-digest'];
    expected ??= digestHeader(typeof digestValue === 'string' ? digestValue : null);
    const algorithm = expected?.algorithm ?? 'sha256';
    const digest = parseDigest(`${algorithm}:${createHash(algorithm).update(body).digest('hex')}`);
    if (expected !== undefined && digest.value !== expected.value) {
      throw new UpstreamFailure(
        'unexpected',
        config.host,
        `sent a manifest with digest ${digest.value}, not ${expected.value}`,
      );
    }
    let mediaType = baseMediaType(headers['content-type']);
    if (mediaType === undefined || !MANIFEST_MEDIA_TYPES.includes(mediaType)) {
      try {
        const declared = (JSON.parse(body.toString('utf8')) as { mediaType?: unknown }).mediaType;
        if (typeof declared === 'string') mediaType = declared;
      } catch {
        // not JSON: keep the upstream's content type as it is
      }
    }
    mediaType ??= MEDIA_TYPES.ociManifest;
    const manifest: StoredManifest = { digest, mediaType, content: body };
    const key = `${target.local}@${digest.value}`;
    this.storing.set(key, manifest);
    const store = async (type: string) => {
      // Bytes first, then the revision link: a manifest is visible only when complete.
      await this.deps.driver.writeFile(blobPath(digest), body);
      await this.deps.driver.writeFile(revisionLinkPath(target.local, digest), type);
      await this.recordSubject(target.local, digest, body, type);
    };
    const stored = store(mediaType).finally(() => this.storing.delete(key));
    stored.catch(() => undefined); // callers log it; this keeps an early failure handled
    return { manifest, stored };
  }

  /** A cached manifest with a subject is listed by the local referrers API too. */
  private async recordSubject(name: string, digest: Digest, body: Buffer, mediaType: string): Promise<void> {
    let subject: Digest | undefined;
    let parsed: ReturnType<typeof parseManifest> | undefined;
    try {
      parsed = parseManifest(body, mediaType);
      subject = parsed.subject;
    } catch {
      return;
    }
    if (subject === undefined) return;
    const descriptor: Descriptor = {
      mediaType,
      digest: digest.value,
      size: body.length,
      ...(parsed.artifactType === undefined ? {} : { artifactType: parsed.artifactType }),
      ...(parsed.annotations === undefined ? {} : { annotations: parsed.annotations }),
    };
    await this.deps.driver.writeFile(referrerPath(name, subject, digest), JSON.stringify(descriptor));
  }

  private async cachedManifest(name: string, digest: Digest): Promise<StoredManifest | undefined> {
    const storing = this.storing.get(`${name}@${digest.value}`);
    if (storing !== undefined) return storing;
    try {
      const manifest = await this.deps.content.getManifest(name, { kind: 'digest', digest });
      this.touchRevision(name, digest);
      return manifest;
    } catch (error) {
      if (error instanceof OciError && error.kind === 'ManifestUnknown') return undefined;
      throw error;
    }
  }

  private async cachedTag(
    name: string,
    tag: string,
  ): Promise<{ manifest: StoredManifest; confirmedAt: number } | undefined> {
    const stat = await this.deps.driver.stat(tagPath(name, tag));
    if (stat === undefined) return undefined;
    try {
      const manifest = await this.deps.content.getManifest(name, { kind: 'tag', tag });
      return { manifest, confirmedAt: stat.mtimeMs };
    } catch (error) {
      if (error instanceof OciError && error.kind === 'ManifestUnknown') return undefined;
      throw error;
    }
  }

  /** Refreshes a link's mtime (its last pull, for TTL eviction), at most once a minute. */
  private touch(path: string): void {
    const now = this.deps.now();
    if ((this.refreshed.get(path) ?? 0) > now - REFRESH_INTERVAL_MS) return;
    if (this.refreshed.size >= REFRESH_MEMORY_LIMIT) this.refreshed.clear();
    this.refreshed.set(path, now);
    this.inBackground(this.deps.driver.refresh(path), (error) =>
      this.deps.logger.warn({ err: error, path }, 'refresh failed'),
    );
  }

  private touchRevision(name: string, digest: Digest): void {
    this.touch(revisionLinkPath(name, digest));
  }

  /**
   * Makes a blob readable in `target.local` when its bytes are here already (cached for this
   * repository, or for another one: content addressing makes them the same bytes). False when
   * it has to come from upstream.
   */
  async localBlob(target: ProxyTarget, digest: Digest): Promise<boolean> {
    if (await this.deps.blobs.isLinked(target.local, digest)) {
      if ((await this.deps.driver.stat(blobPath(digest))) !== undefined) {
        this.touch(layerLinkPath(target.local, digest));
        this.count(target, 'blob', 'hit');
        return true;
      }
    } else if ((await this.deps.driver.stat(blobPath(digest))) !== undefined) {
      await this.deps.blobs.link(target.local, digest);
      this.count(target, 'blob', 'hit');
      return true;
    }
    return false;
  }

  /** Size of an uncached blob, from a HEAD upstream (HEAD requests do not start a fetch). */
  async headBlob(target: ProxyTarget, digest: Digest): Promise<number | undefined> {
    const { config, client } = target.upstream;
    return this.guard(target, async () => {
      const response = await client.send({
        method: 'HEAD',
        path: `/v2/${target.remote}/blobs/${digest.value}`,
        scope: `repository:${target.remote}:pull`,
        timeoutMs: config.upstreamTimeoutMs,
      });
      if (response.status === 404)
        throw new OciError('BlobUnknown', `upstream ${config.host} has no such blob`, {
          digest: digest.value,
        });
      if (response.status !== 200) throw failureOfStatus(config.host, response);
      const length = response.headers.get('content-length');
      return length === null ? undefined : Number(length);
    });
  }

  /** The single-flight fetch of an uncached blob; the blob is linked into `target.local` when stored. */
  fetchBlob(target: ProxyTarget, digest: Digest): Flight {
    const { config, client, breaker } = target.upstream;
    const openBlob = async (signal: AbortSignal): Promise<UpstreamBody> => {
      if (!breaker.allow())
        throw new UpstreamFailure('circuit-open', config.host, this.circuitOpenMessage(target));
      const response = await client.stream({
        method: 'GET',
        path: `/v2/${target.remote}/blobs/${digest.value}`,
        scope: `repository:${target.remote}:pull`,
        timeoutMs: config.upstreamTimeoutMs,
        signal,
      });
      if (response.status === 200) return response;
      response.body.resume();
      if (response.status === 404) {
        breaker.success();
        throw new OciError('BlobUnknown', `upstream ${config.host} has no such blob`, {
          digest: digest.value,
        });
      }
      throw failureOfResponse(config.host, response.status, response.body.headers['retry-after']);
    };
    const flight = this.fetcher.fetch(config.prefix, digest, () => {
      this.count(target, 'blob', 'miss');
      this.deps.metrics.blobFetches.inc({ upstream: config.host });
      return {
        upstream: config.host,
        open: async (signal) => {
          try {
            return await openBlob(signal);
          } catch (error) {
            if (error instanceof UpstreamFailure && error.reason !== 'circuit-open')
              this.upstreamFailed(target, error);
            throw error;
          }
        },
        bytesReceived: (count) => this.deps.metrics.upstreamBytes.inc({ upstream: config.host }, count),
        stored: async () => {
          breaker.success();
          await this.deps.blobs.link(target.local, digest);
        },
        failed: (error) => {
          if (error instanceof UpstreamFailure) this.upstreamFailed(target, error);
          else this.upstreamFailed(target, new UpstreamFailure('connection', config.host, error.message));
        },
      };
    });
    flight.done
      .then(
        () => this.deps.blobs.link(target.local, digest),
        () => undefined,
      )
      .catch(() => undefined);
    return flight;
  }

  /**
   * The referrers of `subject`: the upstream's answer (cached as received); on upstream failure
   * the cached answer; when the upstream has no referrers API (404), what is cached locally.
   */
  async referrers(
    target: ProxyTarget,
    subject: Digest,
    artifactType: string | undefined,
  ): Promise<ReferrersIndex> {
    const { config, client } = target.upstream;
    const path = proxyReferrersPath(target.local, subject);
    let index: ReferrersIndex | undefined;
    try {
      index = await this.guard(target, async () => {
        const response = await client.send({
          method: 'GET',
          path: `/v2/${target.remote}/referrers/${subject.value}`,
          accept: MEDIA_TYPES.ociIndex,
          scope: `repository:${target.remote}:pull`,
          timeoutMs: config.upstreamTimeoutMs,
        });
        if (response.status === 404) {
          await response.body?.cancel();
          return undefined;
        }
        if (response.status !== 200) {
          await response.body?.cancel();
          throw failureOfStatus(config.host, response);
        }
        const body = await readLimited(response, this.deps.maxManifestBytes);
        const parsed = JSON.parse(body.toString('utf8')) as ReferrersIndex;
        if (!Array.isArray(parsed.manifests))
          throw new UpstreamFailure('unexpected', config.host, 'sent a referrers answer without manifests');
        await this.deps.driver.writeFile(path, body);
        this.count(target, 'referrers', 'miss');
        return parsed;
      });
    } catch (error) {
      if (!(error instanceof UpstreamFailure) && !(error instanceof SyntaxError)) throw error;
      const cached = await this.deps.driver.readFile(path);
      if (cached !== undefined) {
        index = JSON.parse(cached.toString('utf8')) as ReferrersIndex;
        this.count(target, 'referrers', 'stale');
      }
    }
    if (index === undefined) return this.deps.content.referrers(target.local, subject, artifactType);
    const manifests = index.manifests.filter(
      (descriptor) => artifactType === undefined || descriptor.artifactType === artifactType,
    );
    return { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests };
  }
}
