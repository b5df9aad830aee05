/**
 * Storage quotas per namespace (DESIGN 9). A namespace uses the bytes of the unique blobs its
 * manifests reference (manifests included) plus reservations:
 *
 *   - an open upload reserves what it has received, and what a request declares (the
 *     `declaredLength` the HTTP layer passes from Content-Length) before its bytes are written (a
 *     body without one is counted as it arrives and cut off at the quota);
 *   - a finished upload keeps its reservation until a manifest references the blob (it is then
 *     counted once, as referenced) or until the upload timeout passes;
 *   - a cancelled, failed or expired upload releases its reservation at once, not at gc, so
 *     usage is exact right after a failed push (unlike harbor#12033).
 *
 * Every check-and-reserve is one synchronous step on the event loop, so concurrent pushes can
 * never together pass the quota. The referenced part is computed by a scan at start and after a
 * deletion or a change of namespaces, and kept up to date by each manifest push; reservations
 * live in memory (after a restart, open uploads are re-read from storage).
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Gauge, type Registry } from 'prom-client';
import { OciError } from '../errors.js';
import type { Content } from '../domain/content.js';
import { parseManifest } from '../domain/manifests.js';
import { parseDigest, type Digest, type Reference } from '../domain/names.js';
import type { ChunkRange, Uploads } from '../domain/uploads.js';
import type { StorageDriver } from '../storage/driver.js';
import { UPLOADS_DIR, blobPath, revisionsDir, uploadDataPath, uploadInfoPath } from '../storage/layout.js';
import type { Policy } from './policy.js';

/** Usage of one namespace, as `registry quota show` and /metrics report it. */
export interface NamespaceUsage {
  readonly namespace: string;
  /** Bytes of unique blobs referenced by the namespace's manifests. */
  readonly referencedBytes: number;
  /** Bytes held by open or finished-but-unreferenced uploads and manifest pushes in flight. */
  readonly reservedBytes: number;
  readonly quotaBytes: number | undefined;
}

interface OpenUpload {
  readonly namespace: string;
  bytes: number;
  touchedAt: number;
}

export class QuotaLedger {
  /** Per namespace prefix: digest -> size of each blob its manifests reference. */
  private referenced = new Map<string, Map<string, number>>();
  /** Per namespace prefix: finished uploads not yet referenced, digest -> size and expiry. */
  private readonly finished = new Map<string, Map<string, { size: number; expiresAt: number }>>();
  private readonly open = new Map<string, OpenUpload>();
  private readonly inFlight = new Map<string, number>();
  private lock: Promise<unknown> = Promise.resolve();
  private ready: Promise<void> = Promise.resolve();

  constructor(
    private readonly driver: StorageDriver,
    private policy: Policy,
    private readonly now: () => number,
    private readonly uploadTimeoutMs: number,
  ) {}

  /** Recomputes everything from storage (at start, and when the namespaces change). */
  start(content: Pick<Content, 'repositories'>, policy: Policy = this.policy): Promise<void> {
    const changed = policy !== this.policy;
    this.policy = policy;
    this.ready = this.exclusive(async () => {
      this.referenced = await this.scanReferenced(await content.repositories());
      // New namespaces: reservations are re-read from storage under the new prefixes (finished
      // blobs awaiting their manifest are forgotten, which only errs towards the client).
      if (changed) {
        this.open.clear();
        this.finished.clear();
      }
      await this.scanOpenUploads();
    });
    return this.ready;
  }

  /** Current usage of every configured namespace. */
  usage(): NamespaceUsage[] {
    return this.policy.allNamespaces().map((namespace) => ({
      namespace: namespace.prefix,
      referencedBytes: sum(this.referenced.get(namespace.prefix)?.values() ?? []),
      reservedBytes: this.reserved(namespace.prefix),
      quotaBytes: namespace.quotaBytes,
    }));
  }

  /** Registers the usage gauges on the app's metrics registry. */
  registerMetrics(registry: Registry): void {
    const usage = () => this.usage();
    new Gauge({
      name: 'registry_namespace_used_bytes',
      help: 'Bytes of unique blobs referenced by the manifests of each namespace',
      labelNames: ['namespace'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const entry of usage()) this.set({ namespace: entry.namespace }, entry.referencedBytes);
      },
    });
    new Gauge({
      name: 'registry_namespace_reserved_bytes',
      help: 'Bytes reserved by uploads and manifest pushes in progress, per namespace',
      labelNames: ['namespace'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const entry of usage()) this.set({ namespace: entry.namespace }, entry.reservedBytes);
      },
    });
    new Gauge({
      name: 'registry_namespace_quota_bytes',
      help: 'Quota of each namespace that has one',
      labelNames: ['namespace'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const entry of usage())
          if (entry.quotaBytes !== undefined) this.set({ namespace: entry.namespace }, entry.quotaBytes);
      },
    });
  }

  /** `uploads` with every byte it receives reserved against the quota of its namespace. */
  guardUploads(uploads: Uploads): Uploads {
    const guarded = Object.create(uploads) as Uploads;
    guarded.start = async (name: string, client?: string) => {
      await this.ready;
      const uploadId = await uploads.start(name, client);
      const namespace = this.policy.namespaceOf(name)?.prefix;
      if (namespace !== undefined) this.open.set(uploadId, { namespace, bytes: 0, touchedAt: this.now() });
      return uploadId;
    };
    guarded.append = (
      name: string,
      uploadId: string,
      body: Readable,
      range?: ChunkRange,
      declaredLength?: number,
    ) =>
      this.receiving(uploads, name, uploadId, body, declaredLength, () =>
        uploads.append(name, uploadId, body, range, declaredLength),
      );
    guarded.finish = async (
      name: string,
      uploadId: string,
      digest: Digest,
      body?: Readable,
      range?: ChunkRange,
      declaredLength?: number,
    ) => {
      const run = () => uploads.finish(name, uploadId, digest, body, range, declaredLength);
      try {
        if (body === undefined) await run();
        else await this.receiving(uploads, name, uploadId, body, declaredLength, run);
      } catch (error) {
        // Discarded (digest mismatch, size limit): nothing of it stays reserved.
        if (
          !(await uploads.offset(name, uploadId).then(
            () => true,
            () => false,
          ))
        )
          this.open.delete(uploadId);
        throw error;
      }
      await this.settleFinished(uploadId, digest);
    };
    guarded.putWhole = async (
      name: string,
      digest: Digest,
      body: Readable,
      declaredLength?: number,
      client?: string,
    ) => {
      const uploadId = await guarded.start(name, client);
      try {
        await guarded.finish(name, uploadId, digest, body, undefined, declaredLength);
      } catch (error) {
        await uploads.cancel(name, uploadId).catch(() => undefined);
        this.open.delete(uploadId);
        throw error;
      }
    };
    guarded.cancel = async (name: string, uploadId: string) => {
      await uploads.cancel(name, uploadId);
      this.open.delete(uploadId);
    };
    return guarded;
  }

  /** `content` with manifest pushes checked against the quota, and deletions recounted. */
  guardContent(content: Content): Content {
    const guarded = Object.create(content) as Content;
    guarded.putManifest = async (name: string, reference: Reference, body: Buffer, contentType?: string) => {
      const namespace = this.policy.namespaceOf(name)?.prefix;
      if (namespace === undefined) return content.putManifest(name, reference, body, contentType);
      await this.ready;
      const added = await this.unreferenced(namespace, body, contentType);
      let bytes = 0;
      for (const entry of added.values()) if (!entry.reserved) bytes += entry.size;
      this.reserve(namespace, bytes, 'this manifest adds');
      this.inFlight.set(namespace, (this.inFlight.get(namespace) ?? 0) + bytes);
      try {
        const result = await content.putManifest(name, reference, body, contentType);
        await this.exclusive(async () => {
          const map = this.referenced.get(namespace) ?? new Map<string, number>();
          this.referenced.set(namespace, map);
          for (const [digest, { size }] of added) {
            map.set(digest, size);
            this.finished.get(namespace)?.delete(digest);
          }
        });
        return result;
      } finally {
        this.inFlight.set(namespace, (this.inFlight.get(namespace) ?? bytes) - bytes);
      }
    };
    guarded.deleteManifest = async (name: string, reference: Reference) => {
      await content.deleteManifest(name, reference);
      const namespace = this.policy.namespaceOf(name)?.prefix;
      if (namespace === undefined || reference.kind === 'tag') return;
      await this.exclusive(async () => {
        const repositories = (await content.repositories()).filter(
          (repository) => this.policy.namespaceOf(repository)?.prefix === namespace,
        );
        const scanned = await this.scanReferenced(repositories);
        this.referenced.set(namespace, scanned.get(namespace) ?? new Map());
      });
    };
    return guarded;
  }

  /**
   * Throws `403 DENIED` with the numbers when `bytes` more would pass the quota of `namespace`.
   * Expired reservations are dropped before saying no.
   */
  private reserve(namespace: string, bytes: number, what: string): void {
    const quota = this.policy.allNamespaces().find((entry) => entry.prefix === namespace)?.quotaBytes;
    if (quota === undefined || bytes === 0) return;
    let used = this.used(namespace);
    if (used + bytes <= quota) return;
    this.expire();
    used = this.used(namespace);
    if (used + bytes <= quota) return;
    throw new OciError(
      'Denied',
      `quota exceeded in namespace ${namespace}: ${used} bytes used or reserved + ${bytes} bytes ${what} > quota ${quota} bytes`,
      { namespace, usedBytes: used, requestedBytes: bytes, quotaBytes: quota },
    );
  }

  private used(namespace: string): number {
    return sum(this.referenced.get(namespace)?.values() ?? []) + this.reserved(namespace);
  }

  private reserved(namespace: string): number {
    const now = this.now();
    let total = this.inFlight.get(namespace) ?? 0;
    for (const upload of this.open.values())
      if (upload.namespace === namespace && upload.touchedAt + this.uploadTimeoutMs > now)
        total += upload.bytes;
    for (const entry of this.finished.get(namespace)?.values() ?? [])
      if (entry.expiresAt > now) total += entry.size;
    return total;
  }

  /** Forgets uploads untouched past the upload timeout (the purge removes their files). */
  private expire(): void {
    const now = this.now();
    for (const [uploadId, upload] of this.open)
      if (upload.touchedAt + this.uploadTimeoutMs <= now) this.open.delete(uploadId);
    for (const map of this.finished.values())
      for (const [digest, entry] of map) if (entry.expiresAt <= now) map.delete(digest);
  }

  /**
   * Runs `write` with its body's bytes reserved (`declaredLength` up front, or counted as they
   * arrive when the request declared none), then settles the reservation on the offset.
   */
  private async receiving(
    uploads: Uploads,
    name: string,
    uploadId: string,
    body: Readable,
    declaredLength: number | undefined,
    write: () => Promise<unknown>,
  ): Promise<number> {
    await this.ready;
    const namespace = this.policy.namespaceOf(name)?.prefix;
    if (namespace === undefined) return (await write()) as number;
    let upload = this.open.get(uploadId);
    if (upload === undefined) {
      upload = { namespace, bytes: await uploads.offset(name, uploadId), touchedAt: this.now() };
      this.open.set(uploadId, upload);
    }
    const declared = declaredLength ?? 0;
    this.reserve(namespace, declared, 'this upload sends');
    upload.bytes += declared;
    upload.touchedAt = this.now();
    let received = 0;
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received <= declared) return;
      const extra = Math.min(chunk.length, received - declared);
      try {
        this.reserve(namespace, extra, 'this upload sends');
        upload.bytes += extra;
      } catch (error) {
        body.destroy(error as Error);
      }
    };
    // Node's parser stops a body at its Content-Length: only a body without one needs counting.
    // Paused first, so the listener does not start the flow before the upload pipes the body.
    const counting = declaredLength === undefined;
    if (counting) {
      body.pause();
      body.on('data', onData);
    }
    try {
      return (await write()) as number;
    } finally {
      body.off('data', onData);
      upload.touchedAt = this.now();
      // Gone (finished or discarded): the caller settles it; until then the bytes stay reserved.
      upload.bytes = await uploads.offset(name, uploadId).catch(() => upload.bytes);
    }
  }

  /** A finished upload: its blob stays reserved until referenced or until the upload timeout. */
  private async settleFinished(uploadId: string, digest: Digest): Promise<void> {
    const upload = this.open.get(uploadId);
    if (upload === undefined) return;
    const size = (await this.driver.stat(blobPath(digest)))?.size ?? 0;
    // From here on synchronous: the reservation moves without a moment of being released.
    this.open.delete(uploadId);
    if (this.referenced.get(upload.namespace)?.has(digest.value)) return;
    const map = this.finished.get(upload.namespace) ?? new Map<string, { size: number; expiresAt: number }>();
    this.finished.set(upload.namespace, map);
    map.set(digest.value, { size, expiresAt: this.now() + this.uploadTimeoutMs });
  }

  /** Blobs (and the manifest itself) a manifest push would newly reference in `namespace`. */
  private async unreferenced(namespace: string, body: Buffer, contentType: string | undefined) {
    const added = new Map<string, { size: number; reserved: boolean }>();
    let blobs: readonly Digest[];
    try {
      blobs = parseManifest(body, contentType).blobs;
    } catch {
      return added; // the push itself refuses it
    }
    const referenced = this.referenced.get(namespace);
    const manifestDigest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    if (!referenced?.has(manifestDigest)) added.set(manifestDigest, { size: body.length, reserved: false });
    await Promise.all(
      blobs.map(async (digest) => {
        if (referenced?.has(digest.value)) return;
        // A finished upload is already reserved: it becomes referenced without counting twice.
        const reserved = (this.finished.get(namespace)?.get(digest.value)?.expiresAt ?? 0) > this.now();
        const size = (await this.driver.stat(blobPath(digest)))?.size ?? 0;
        added.set(digest.value, { size, reserved });
      }),
    );
    return added;
  }

  private async scanReferenced(repositories: readonly string[]): Promise<Map<string, Map<string, number>>> {
    const result = new Map<string, Map<string, number>>();
    for (const repository of repositories) {
      const namespace = this.policy.namespaceOf(repository)?.prefix;
      if (namespace === undefined) continue;
      const map = result.get(namespace) ?? new Map<string, number>();
      result.set(namespace, map);
      for (const algorithm of await this.driver.list(revisionsDir(repository))) {
        for (const hex of await this.driver.list(`${revisionsDir(repository)}/${algorithm}`)) {
          let digest: Digest;
          try {
            digest = parseDigest(`${algorithm}:${hex}`);
          } catch {
            continue;
          }
          const [mediaType, content] = await Promise.all([
            this.driver.readFile(`${revisionsDir(repository)}/${algorithm}/${hex}`),
            this.driver.readFile(blobPath(digest)),
          ]);
          if (content === undefined) continue;
          map.set(digest.value, content.length);
          let blobs: readonly Digest[];
          try {
            blobs = parseManifest(content, mediaType?.toString('utf8')).blobs;
          } catch {
            continue;
          }
          for (const blob of blobs) {
            if (map.has(blob.value)) continue;
            map.set(blob.value, (await this.driver.stat(blobPath(blob)))?.size ?? 0);
          }
        }
      }
    }
    return result;
  }

  private async scanOpenUploads(): Promise<void> {
    for (const uploadId of await this.driver.list(UPLOADS_DIR)) {
      if (this.open.has(uploadId)) continue;
      const [info, data] = await Promise.all([
        this.driver.readFile(uploadInfoPath(uploadId)),
        this.driver.stat(uploadDataPath(uploadId)),
      ]);
      let name: string;
      try {
        name = (JSON.parse(info?.toString('utf8') ?? '') as { name: string }).name;
      } catch {
        continue;
      }
      const namespace = this.policy.namespaceOf(name)?.prefix;
      if (namespace !== undefined)
        this.open.set(uploadId, {
          namespace,
          bytes: data?.size ?? 0,
          touchedAt: data?.mtimeMs ?? this.now(),
        });
    }
  }

  private exclusive<T>(run: () => Promise<T>): Promise<T> {
    const next = this.lock.then(run, run);
    this.lock = next.catch(() => undefined);
    return next;
  }
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}
