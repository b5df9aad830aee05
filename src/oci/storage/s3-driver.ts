/**
 * The S3 driver: the registry's storage on an S3-compatible object store, so several registry
 * processes can share one bucket. Paths map to keys `<prefix><path>`; directories are implicit
 * (key prefixes). Three key families of the driver's own sit beside the layout, under names no
 * layout path uses:
 *
 *   <prefix><path>                              the object itself; `x-amz-meta-mtime` = write time (ms)
 *   <prefix>_refreshed/<path>                   marker written by `touch`/`refresh` of an existing
 *                                               object: S3 cannot change an object's time without a
 *                                               copy, so `stat` reports the later of the two
 *   <prefix>_segments/<path>/<offset, 16 digits> one object per `appendStream`: S3 has no append,
 *                                               so a growing file (an upload) is a run of segments
 *
 * Why this shape: `move` of an upload into place reads the segments through this process into a
 * new multipart upload of the target key (no `UploadPartCopy`, no `CopyObject`, so no 5 GiB limit
 * and no dependency on server-side copy). Everything a later request needs lives in the bucket,
 * so any replica continues any upload. A segment becomes visible only when its multipart upload
 * completes: a process killed mid-chunk leaves no partial bytes, only an incomplete multipart
 * upload (aborted by the driver on stream errors; a bucket lifecycle rule cleans crashed ones).
 *
 * Requests use path style when configured, keep-alive connections, and compute checksums only
 * where S3 requires them (`WHEN_REQUIRED`): the SDK's default CRC32 trailers break many
 * S3-compatible servers.
 */
import http from 'node:http';
import https from 'node:https';
import { PassThrough, Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import pLimit from 'p-limit';
import type { S3Settings } from '../storage-config.js';
import type { AppendStream, FileInfo, ReadableFile, StorageDriver } from './driver.js';

// The settings are part of the config module (below storage); drivers' users import them here.
export type { S3Settings };

const REFRESHED = '_refreshed';
const SEGMENTS = '_segments';
const OFFSET_DIGITS = 16;
/** Multipart part size: 8 MiB parts keep a 10 GiB blob far below S3's 10,000-part limit. */
const PART_SIZE = 8 * 1024 * 1024;
/** Parts in flight per upload: bounds memory at PART_SIZE x (QUEUE + 1) per streaming request. */
const PART_QUEUE = 2;
/** Parallel requests of one bulk delete. */
const DELETE_CONCURRENCY = 16;

/** A missing key; a missing bucket is not "missing content" but a configuration error. */
function isNotFound(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  if (e.name === 'NoSuchBucket') return false;
  return e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404;
}

interface Segment {
  readonly key: string;
  readonly offset: number;
  readonly size: number;
  readonly mtimeMs: number;
}

export class S3Driver implements StorageDriver {
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(settings: S3Settings) {
    this.bucket = settings.bucket;
    this.prefix = settings.prefix === '' ? '' : `${settings.prefix}/`;
    this.client = new S3Client({
      region: settings.region,
      ...(settings.endpoint === undefined ? {} : { endpoint: settings.endpoint }),
      forcePathStyle: settings.forcePathStyle,
      // A copy: the SDK annotates the credentials object, and config objects are frozen.
      ...(settings.credentials === undefined ? {} : { credentials: { ...settings.credentials } }),
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        httpAgent: new http.Agent({ keepAlive: true, maxSockets: 128 }),
        httpsAgent: new https.Agent({ keepAlive: true, maxSockets: 128 }),
      },
    });
  }

  /**
   * Fails unless the bucket exists and these credentials may list it: called once at start, so
   * a wrong bucket or key stops the registry instead of looking like an empty one.
   */
  async checkAccess(): Promise<void> {
    try {
      await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, MaxKeys: 1 }),
      );
    } catch (error) {
      const e = error as { name?: string; message?: string };
      throw new Error(`S3 bucket ${this.bucket} is not usable: ${e.name ?? 'error'}: ${e.message ?? ''}`, {
        cause: error,
      });
    }
  }

  private key(path: string): string {
    return `${this.prefix}${path}`;
  }

  private markerKey(path: string): string {
    return `${this.prefix}${REFRESHED}/${path}`;
  }

  private segmentsPrefix(path: string): string {
    return `${this.prefix}${SEGMENTS}/${path}/`;
  }

  async stat(path: string): Promise<FileInfo | undefined> {
    const [object, marker] = await Promise.all([this.head(this.key(path)), this.head(this.markerKey(path))]);
    if (object !== undefined) {
      return {
        size: object.size,
        mtimeMs: Math.max(object.mtimeMs, marker?.mtimeMs ?? 0),
        isDirectory: false,
      };
    }
    const [segments, children] = await Promise.all([
      this.segments(path),
      this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${this.key(path)}/`, MaxKeys: 1 }),
      ),
    ]);
    const last = segments.at(-1);
    if (last !== undefined) {
      return {
        size: last.offset + last.size,
        mtimeMs: Math.max(...segments.map((segment) => segment.mtimeMs)),
        isDirectory: false,
      };
    }
    if ((children.KeyCount ?? 0) > 0) return { size: 0, mtimeMs: 0, isDirectory: true };
    return undefined;
  }

  async readFile(path: string): Promise<Buffer | undefined> {
    try {
      const result = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.key(path) }),
      );
      return Buffer.from(await result.Body!.transformToByteArray());
    } catch (error) {
      if (isNotFound(error)) return this.segmented(path);
      throw error;
    }
  }

  async writeFile(path: string, content: Uint8Array | string): Promise<void> {
    // One PUT is atomic and durable on S3 (`durable: false` changes nothing): readers see the
    // old object or the new one.
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.key(path),
        // A Buffer, so the SDK sends a Content-Length (an empty string would look like a stream).
        Body: typeof content === 'string' ? Buffer.from(content) : content,
        Metadata: { mtime: String(Date.now()) },
      }),
    );
  }

  async createExclusive(path: string, content: string): Promise<boolean> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key(path),
          Body: Buffer.from(content),
          IfNoneMatch: '*',
          Metadata: { mtime: String(Date.now()) },
        }),
      );
      return true;
    } catch (error) {
      // 412: the key exists; 409: another conditional write of it is in flight (AWS answers so).
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 412 || status === 409) return false;
      throw error;
    }
  }

  async touch(path: string): Promise<void> {
    if (await this.refresh(path)) return;
    await this.writeFile(path, '');
  }

  async refresh(path: string): Promise<boolean> {
    if ((await this.head(this.key(path))) === undefined) return false;
    await this.writeFile(`${REFRESHED}/${path}`, '');
    return true;
  }

  readStream(path: string, start?: number, end?: number): Readable {
    return Readable.from(this.chunks(path, start ?? 0, end));
  }

  async openRead(path: string): Promise<ReadableFile | undefined> {
    const object = await this.head(this.key(path));
    if (object === undefined) return undefined;
    return new SequentialObjectReader(this, path, object.size);
  }

  async appendStream(path: string, offset: number): Promise<AppendStream> {
    // Segments at or past `offset` are superseded by this write (0 starts the file over).
    const stale = (await this.segments(path)).filter((segment) => segment.offset >= offset);
    await this.deleteKeys(stale.map((segment) => segment.key));
    const stream = new PassThrough({ highWaterMark: PART_SIZE });
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: `${this.segmentsPrefix(path)}${String(offset).padStart(OFFSET_DIGITS, '0')}`,
        Body: stream,
        Metadata: { mtime: String(Date.now()) },
      },
      partSize: PART_SIZE,
      queueSize: PART_QUEUE,
      leavePartsOnError: false,
    });
    // A failed body (client gone) must abort the multipart upload rather than complete a prefix.
    stream.once('error', () => void upload.abort().catch(() => undefined));
    const done = upload.done().then(() => undefined);
    done.catch(() => undefined);
    // A PassThrough calls back once a chunk is queued for the part buffer, not once it is sent.
    return { stream, done, releasesOnCallback: false };
  }

  async list(path: string): Promise<string[]> {
    const prefix = path === '' ? this.prefix : `${this.key(path)}/`;
    const names = new Set<string>();
    for await (const page of this.pages(prefix, '/')) {
      for (const common of page.CommonPrefixes ?? []) {
        const name = common.Prefix!.slice(prefix.length, -1);
        if (name !== '') names.add(name);
      }
      for (const object of page.Contents ?? []) names.add(object.Key!.slice(prefix.length));
    }
    // A growing file exists only as segments (`_segments/<path>/<name>/<offset>`): list it, and
    // the directories holding one, like the fs driver does.
    const segments = `${this.prefix}${SEGMENTS}/${path === '' ? '' : `${path}/`}`;
    for await (const page of this.pages(segments, '/')) {
      for (const common of page.CommonPrefixes ?? []) {
        const name = common.Prefix!.slice(segments.length, -1);
        if (name !== '') names.add(name);
      }
    }
    return [...names].sort();
  }

  /**
   * Moves by streaming `from` (an object or a run of segments) into a new object at `to`, then
   * deleting `from`: the target appears whole when its upload completes, never as a prefix.
   */
  async move(from: string, to: string): Promise<void> {
    const source = await this.stat(from);
    if (source === undefined || source.isDirectory) {
      throw Object.assign(new Error(`move: ${from} does not exist`), { code: 'ENOENT' });
    }
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: this.key(to),
        Body: Readable.from(this.chunks(from, 0, undefined)),
        Metadata: { mtime: String(Date.now()) },
      },
      partSize: PART_SIZE,
      queueSize: PART_QUEUE,
      leavePartsOnError: false,
    });
    await upload.done();
    await this.deleteObjectOrSegments(from);
  }

  async delete(path: string): Promise<void> {
    const keys = [this.key(path), this.markerKey(path)];
    for (const prefix of [`${this.key(path)}/`, `${this.markerKey(path)}/`, this.segmentsPrefix(path)]) {
      for await (const page of this.pages(prefix, undefined)) {
        for (const object of page.Contents ?? []) keys.push(object.Key!);
      }
    }
    // Segments of files below `path` (uploads/<id>/data when deleting uploads/<id>).
    for await (const page of this.pages(`${this.prefix}${SEGMENTS}/${path}/`, undefined)) {
      for (const object of page.Contents ?? []) keys.push(object.Key!);
    }
    await this.deleteKeys([...new Set(keys)]);
  }

  /** Directories are key prefixes on S3: they vanish with their last object. */
  async pruneEmptyDirectories(): Promise<void> {}

  /** Bytes `[start, end]` of an object or of a run of segments, in order. */
  async *chunks(path: string, start: number, end: number | undefined): AsyncGenerator<Buffer> {
    const object = await this.head(this.key(path));
    const pieces: Segment[] =
      object === undefined
        ? await this.segments(path)
        : [{ key: this.key(path), offset: 0, size: object.size, mtimeMs: object.mtimeMs }];
    const last = end ?? Number.MAX_SAFE_INTEGER;
    for (const piece of pieces) {
      const from = Math.max(start, piece.offset);
      const to = Math.min(last, piece.offset + piece.size - 1);
      if (piece.size === 0 || from > to) continue;
      const result = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: piece.key,
          Range: `bytes=${from - piece.offset}-${to - piece.offset}`,
        }),
      );
      for await (const chunk of result.Body as Readable) yield chunk as Buffer;
    }
  }

  private async head(key: string): Promise<{ size: number; mtimeMs: number } | undefined> {
    try {
      const result = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      const written = Number(result.Metadata?.mtime);
      return {
        size: result.ContentLength ?? 0,
        mtimeMs: Number.isFinite(written) ? written : (result.LastModified?.getTime() ?? 0),
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** The segments of a growing file, by offset; [] when it has none. */
  private async segments(path: string): Promise<Segment[]> {
    const prefix = this.segmentsPrefix(path);
    const found: Segment[] = [];
    for await (const page of this.pages(prefix, '/')) {
      for (const object of page.Contents ?? []) {
        const name = object.Key!.slice(prefix.length);
        if (!/^\d{16}$/.test(name)) continue;
        found.push({
          key: object.Key!,
          offset: Number(name),
          size: object.Size ?? 0,
          mtimeMs: object.LastModified?.getTime() ?? 0,
        });
      }
    }
    return found.sort((a, b) => a.offset - b.offset);
  }

  private async segmented(path: string): Promise<Buffer | undefined> {
    if ((await this.segments(path)).length === 0) return undefined;
    const chunks: Buffer[] = [];
    for await (const chunk of this.chunks(path, 0, undefined)) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  private async deleteObjectOrSegments(path: string): Promise<void> {
    const keys = [this.key(path), this.markerKey(path)];
    for (const segment of await this.segments(path)) keys.push(segment.key);
    await this.deleteKeys(keys);
  }

  private async deleteKeys(keys: readonly string[]): Promise<void> {
    // One DeleteObject per key: DeleteObjects needs a Content-MD5 some S3-compatible servers reject.
    const limit = pLimit(DELETE_CONCURRENCY);
    await Promise.all(
      keys.map((key) =>
        limit(() => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }))),
      ),
    );
  }

  /** Every page of a listing (1,000 keys each), following continuation tokens. */
  private async *pages(
    prefix: string,
    delimiter: string | undefined,
  ): AsyncGenerator<ListObjectsV2CommandOutput> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          ...(delimiter === undefined ? {} : { Delimiter: delimiter }),
          ...(token === undefined ? {} : { ContinuationToken: token }),
        }),
      );
      yield page;
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }
}

/**
 * Positional reads over one ranged GET: blob downloads read front to back, so one response body
 * serves the whole range; a read elsewhere (a client's Range request) opens a new one.
 */
class SequentialObjectReader implements ReadableFile {
  private iterator: AsyncIterator<Buffer> | undefined;
  private position = -1;
  private leftover: Buffer = Buffer.alloc(0);

  constructor(
    private readonly driver: S3Driver,
    private readonly path: string,
    readonly size: number,
  ) {}

  async read(buffer: Buffer, position: number): Promise<number> {
    if (position >= this.size) return 0;
    if (this.iterator === undefined || position !== this.position) {
      await this.iterator?.return?.();
      this.iterator = this.driver.chunks(this.path, position, this.size - 1)[Symbol.asyncIterator]();
      this.position = position;
      this.leftover = Buffer.alloc(0);
    }
    let filled = 0;
    while (filled < buffer.length) {
      if (this.leftover.length === 0) {
        const next = await this.iterator.next();
        if (next.done === true) break;
        this.leftover = next.value;
      }
      const take = Math.min(this.leftover.length, buffer.length - filled);
      this.leftover.copy(buffer, filled, 0, take);
      this.leftover = this.leftover.subarray(take);
      filled += take;
    }
    this.position += filled;
    return filled;
  }

  async close(): Promise<void> {
    await this.iterator?.return?.();
    this.iterator = undefined;
  }
}
