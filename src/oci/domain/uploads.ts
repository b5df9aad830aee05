/**
 * Blob uploads, one readable sequence (cf. Distribution's blobwriter):
 *
 *   start    -> uploads/<uuid>/info (repository), empty session
 *   append   -> bytes streamed to uploads/<uuid>/data at the current offset, hashed on the way
 *   finish   -> last chunk appended; digest computed (from the running hash, or by re-reading
 *               the file when the process restarted or a chunk failed); compared with the
 *               client's digest; data fsynced; renamed to blobs/<alg>/..; linked into the repo
 *   cancel   -> the upload directory is removed
 *
 * Upload state lives in storage (info + data), never only in memory: any registry process on the
 * same storage continues any upload, so replicas need no sticky sessions and no shared secret.
 *
 * Chunks are serialized across processes by a claim per offset: before a chunk (or the commit)
 * writes at offset N, its process creates uploads/<uuid>/claims/<N>-0 exclusively (O_EXCL, S3
 * `If-None-Match: *`). A second chunk for N, from any replica, finds the claim and is answered 416
 * with the upload's Range, as the spec says for out-of-order chunks; so two replicas never write
 * the same bytes, and a running hash always covers exactly the bytes its process stored. A chunk
 * that fails deletes its claim (the client retries at once); a claim whose holder died is taken
 * over, as generation 1, 2, ..., once its holder has not refreshed it for CHUNK_LEASE_MS (holders
 * refresh it while they stream, so a long chunk keeps it).
 *
 * Nothing is visible under blobs/ before the digest is verified, and the final rename is atomic,
 * so a process killed at any point leaves either no blob or a complete one. Two clients pushing
 * the same blob both rename identical bytes onto the same path: both succeed.
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { OciError } from '../errors.js';
import type { StorageDriver } from '../storage/driver.js';
import {
  TMP_DIR,
  UPLOADS_DIR,
  blobPath,
  uploadClaimPath,
  uploadDataPath,
  uploadDir,
  uploadInfoPath,
} from '../storage/layout.js';
import type { Blobs } from './blobs.js';
import type { Digest } from './names.js';

/** Inclusive byte range of a chunk, from `Content-Range`. */
export interface ChunkRange {
  readonly start: number;
  readonly end: number;
}

/** In-memory state of an upload this process is receiving. */
interface Session {
  readonly name: string;
  /** Who opened it (the client's address), for the per-client cap; unknown after a restart. */
  readonly client?: string;
  /** sha256 of bytes [0, offset) when known; undefined after a failed chunk or a restart. */
  hash: Hash | undefined;
  offset: number;
  busy: boolean;
}

interface UploadInfo {
  readonly name: string;
  readonly startedAt: number;
}

const UPLOAD_ID = /^[a-f0-9-]{36}$/;

/**
 * How long a chunk's claim outlives its holder's last refresh: a replica killed mid-chunk blocks
 * that offset of that upload this long (the client sees 416 and can retry or restart the upload).
 */
const CHUNK_LEASE_MS = 60_000;
/** Holders refresh their claim this often while they stream. */
const CLAIM_REFRESH_MS = CHUNK_LEASE_MS / 4;
/** Takeovers of expired claims at one offset before giving up (each needs a holder that died). */
const MAX_CLAIM_GENERATIONS = 16;

/** The 416 of a chunk that does not start where the upload ends, with the upload's Range. */
function outOfOrder(offset: number, message?: string): OciError {
  return new OciError('BlobUploadOutOfOrder', message, { offset }, { Range: `0-${Math.max(0, offset - 1)}` });
}

/** A chunk's hold on an upload at one offset (see the module comment). */
interface Claim {
  /** Stops refreshing; the claim stays, marking the offset as written. */
  keep(): void;
  /** Stops refreshing and deletes the claim: the chunk failed, the offset is free again. */
  release(): Promise<void>;
}

/** Counters the app exposes as metrics. */
export interface UploadObserver {
  bytesReceived(count: number): void;
}

/** What one client can hold: bytes per blob, and requests streaming into one repository at once. */
export interface UploadLimits {
  readonly maxBytes: number;
  readonly maxConcurrentPerRepository: number;
  /** Open upload sessions per repository (429 TOOMANYREQUESTS beyond); expired ones are purged. */
  readonly maxSessionsPerRepository?: number;
  /** Open upload sessions per client address (429 TOOMANYREQUESTS beyond). */
  readonly maxSessionsPerClient?: number;
}

/** Seconds a client told 429 should wait: uploads in flight usually finish within that. */
const RETRY_AFTER_SECONDS = '5';

export class Uploads {
  private readonly sessions = new Map<string, Session>();
  /** Requests streaming data, per repository. */
  private readonly streaming = new Map<string, number>();

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: Blobs,
    private readonly now: () => number,
    private readonly limits: UploadLimits = {
      maxBytes: Number.MAX_SAFE_INTEGER,
      maxConcurrentPerRepository: Number.MAX_SAFE_INTEGER,
    },
    private readonly observer: UploadObserver = { bytesReceived: () => undefined },
  ) {}

  /**
   * Opens an upload session in repository `name` for `client`; returns its id. Past the open
   * sessions allowed per repository or per client: 429 TOOMANYREQUESTS (finish, cancel or let
   * some expire). Sessions are counted in memory: ones from before a restart count once touched.
   */
  async start(name: string, client?: string): Promise<string> {
    let inRepository = 0;
    let ofClient = 0;
    for (const session of this.sessions.values()) {
      if (session.name === name) inRepository += 1;
      if (client !== undefined && session.client === client) ofClient += 1;
    }
    const perRepository = this.limits.maxSessionsPerRepository ?? Number.MAX_SAFE_INTEGER;
    const perClient = this.limits.maxSessionsPerClient ?? Number.MAX_SAFE_INTEGER;
    if (inRepository >= perRepository || ofClient >= perClient) {
      const what =
        inRepository >= perRepository
          ? `repository ${name} has ${inRepository} open upload sessions (limit ${perRepository})`
          : `this client has ${ofClient} open upload sessions (limit ${perClient})`;
      throw new OciError('TooManyRequests', `${what}; finish or cancel some`, undefined, {
        'Retry-After': RETRY_AFTER_SECONDS,
      });
    }
    const uploadId = randomUUID();
    const info: UploadInfo = { name, startedAt: this.now() };
    // Not fsynced (as Distribution): a session lost in a crash is one the client restarts.
    await this.driver.writeFile(uploadInfoPath(uploadId), JSON.stringify(info), { durable: false });
    this.sessions.set(uploadId, {
      name,
      ...(client === undefined ? {} : { client }),
      hash: createHash('sha256'),
      offset: 0,
      busy: false,
    });
    return uploadId;
  }

  /** Number of bytes received so far. */
  async offset(name: string, uploadId: string): Promise<number> {
    return (await this.session(name, uploadId)).offset;
  }

  /**
   * Appends a chunk. With `range`, the chunk must start exactly at the current offset (else 416,
   * as the spec requires for out-of-order chunks). Returns the new offset.
   */
  async append(
    name: string,
    uploadId: string,
    body: Readable,
    range?: ChunkRange,
    declaredLength?: number,
  ): Promise<number> {
    const session = await this.lock(name, uploadId, range);
    let claim: Claim | undefined;
    try {
      claim = await this.claim(uploadId, session.offset);
      const start = session.offset;
      const offset = await this.write(uploadId, session, body, declaredLength);
      // An empty chunk leaves the offset where it was: free it for the next chunk.
      if (offset === start) await claim.release();
      else claim.keep();
      return offset;
    } catch (error) {
      await claim?.release();
      throw error;
    } finally {
      session.busy = false;
    }
  }

  /**
   * Completes an upload: appends the optional last chunk, verifies `digest` over all bytes and
   * makes the blob visible in `name`. A mismatch discards the upload (`DIGEST_INVALID`).
   */
  async finish(
    name: string,
    uploadId: string,
    digest: Digest,
    body?: Readable,
    range?: ChunkRange,
    declaredLength?: number,
  ): Promise<void> {
    const session = await this.lock(name, uploadId, range);
    let claim: Claim | undefined;
    try {
      // The commit claims the offset too: a chunk or a second commit racing it elsewhere gets 416.
      claim = await this.claim(uploadId, session.offset);
      if (body !== undefined) await this.write(uploadId, session, body, declaredLength);
      const actual =
        session.hash !== undefined && digest.algorithm === 'sha256'
          ? session.hash.digest('hex')
          : await this.hashFile(uploadId, digest.algorithm);
      session.hash = undefined;
      if (actual !== digest.hex) {
        await this.discard(uploadId);
        throw new OciError('DigestInvalid', undefined, { digest: digest.value });
      }
      if (session.offset === 0) await this.driver.writeFile(uploadDataPath(uploadId), '');
      await this.driver.move(uploadDataPath(uploadId), blobPath(digest));
      await this.blobs.link(name, digest);
      claim.keep();
      await this.discard(uploadId);
    } catch (error) {
      await claim?.release();
      throw error;
    } finally {
      session.busy = false;
    }
  }

  /**
   * Claims offset `offset` of the upload for one chunk, against every process on the storage;
   * 416 when another chunk holds it (or wrote there already). See the module comment.
   */
  private async claim(uploadId: string, offset: number): Promise<Claim> {
    for (let generation = 0; generation < MAX_CLAIM_GENERATIONS; generation++) {
      const path = uploadClaimPath(uploadId, offset, generation);
      if (await this.driver.createExclusive(path, String(this.now()))) {
        const timer = setInterval(
          () => void this.driver.refresh(path).catch(() => undefined),
          CLAIM_REFRESH_MS,
        );
        timer.unref();
        return {
          keep: () => clearInterval(timer),
          release: async () => {
            clearInterval(timer);
            await this.driver.delete(path).catch(() => undefined);
          },
        };
      }
      const held = await this.driver.stat(path);
      // Still held (or written): the other chunk wins. Gone meanwhile or expired: next generation.
      if (held !== undefined && this.now() - held.mtimeMs <= CHUNK_LEASE_MS)
        throw outOfOrder(offset, 'another chunk of this upload is in progress at this offset');
    }
    throw outOfOrder(offset, 'this offset of the upload cannot be claimed');
  }

  /**
   * Takes the session for one chunk: refuses a second chunk while one is in progress, and (with
   * `range`) a chunk that does not start at the current offset (416, as the spec requires). The
   * caller clears `busy` when done.
   */
  private async lock(name: string, uploadId: string, range: ChunkRange | undefined): Promise<Session> {
    const session = await this.session(name, uploadId);
    if (session.busy) throw outOfOrder(session.offset, 'another chunk of this upload is in progress');
    if (range !== undefined && range.start !== session.offset) throw outOfOrder(session.offset);
    session.busy = true;
    return session;
  }

  /** Monolithic upload (`POST ?digest=`): start, one chunk, finish. */
  async putWhole(
    name: string,
    digest: Digest,
    body: Readable,
    declaredLength?: number,
    client?: string,
  ): Promise<void> {
    const uploadId = await this.start(name, client);
    try {
      await this.finish(name, uploadId, digest, body, undefined, declaredLength);
    } catch (error) {
      await this.discard(uploadId);
      throw error;
    }
  }

  async cancel(name: string, uploadId: string): Promise<void> {
    await this.session(name, uploadId);
    await this.discard(uploadId);
  }

  /** Removes uploads untouched for `maxAgeMs` (abandoned by their clients). Returns how many. */
  async purgeStale(maxAgeMs: number): Promise<number> {
    let purged = 0;
    for (const uploadId of await this.driver.list(UPLOADS_DIR)) {
      const session = this.sessions.get(uploadId);
      if (session?.busy) continue;
      // Object stores have no directory mtimes: the info file dates a session without data.
      const [dir, info, data] = await Promise.all([
        this.driver.stat(uploadDir(uploadId)),
        this.driver.stat(uploadInfoPath(uploadId)),
        this.driver.stat(uploadDataPath(uploadId)),
      ]);
      const lastTouched = Math.max(dir?.mtimeMs ?? 0, info?.mtimeMs ?? 0, data?.mtimeMs ?? 0);
      if (this.now() - lastTouched > maxAgeMs) {
        await this.discard(uploadId);
        purged += 1;
      }
    }
    return purged;
  }

  /**
   * Removes temp files of atomic writes older than `maxAgeMs`: left behind only when a process
   * died between writing a temp file and renaming it, so they are never visible content.
   */
  async purgeStaleTemp(maxAgeMs: number): Promise<number> {
    let purged = 0;
    for (const entry of await this.driver.list(TMP_DIR)) {
      const stat = await this.driver.stat(`${TMP_DIR}/${entry}`);
      if (stat !== undefined && this.now() - stat.mtimeMs > maxAgeMs) {
        await this.driver.delete(`${TMP_DIR}/${entry}`);
        purged += 1;
      }
    }
    return purged;
  }

  private async discard(uploadId: string): Promise<void> {
    // Files first: a request that misses the session in memory meanwhile would rebuild it from disk.
    await this.driver.delete(uploadDir(uploadId));
    this.sessions.delete(uploadId);
  }

  /**
   * The session of `uploadId` in `name`, from storage: its info names the repository and the data
   * size is the offset, so any process (a restart, another replica on the same storage) continues
   * any upload. The in-memory session only carries the running hash, kept while the offset in
   * storage is still the one it hashed up to (another replica appending, or a failed chunk,
   * changes it; then `finish` re-reads the bytes).
   */
  private async session(name: string, uploadId: string): Promise<Session> {
    const unknown = () => new OciError('BlobUploadUnknown', undefined, { uploadId });
    if (!UPLOAD_ID.test(uploadId)) throw unknown();
    const known = this.sessions.get(uploadId);
    if (known?.busy === true) {
      if (known.name !== name) throw unknown();
      return known; // the caller refuses the overlapping chunk
    }
    const [raw, data] = await Promise.all([
      this.driver.readFile(uploadInfoPath(uploadId)),
      this.driver.stat(uploadDataPath(uploadId)),
    ]);
    let info: UploadInfo;
    try {
      info = JSON.parse(raw?.toString('utf8') ?? '') as UploadInfo;
    } catch {
      this.sessions.delete(uploadId); // cancelled or completed elsewhere
      throw unknown();
    }
    if (info.name !== name) throw unknown();
    const size = data?.size ?? 0;
    if (known !== undefined && known.offset === size) return known;
    const session: Session = {
      name,
      hash: size === 0 ? createHash('sha256') : undefined,
      offset: size,
      busy: false,
    };
    this.sessions.set(uploadId, session);
    return session;
  }

  /**
   * Streams `body` to the upload file at the session offset, hashing as it goes. Refused with 429
   * when the repository already has its limit of requests streaming, and with 413 (the upload
   * discarded) when the blob would pass the size limit: up front from `declaredLength` (the
   * request's Content-Length, passed in by the HTTP layer); a body sent without a length is
   * counted as it arrives and cut off (the connection closes) at the limit.
   */
  private async write(
    uploadId: string,
    session: Session,
    body: Readable,
    declaredLength = 0,
  ): Promise<number> {
    const active = this.streaming.get(session.name) ?? 0;
    if (active >= this.limits.maxConcurrentPerRepository) {
      throw new OciError(
        'TooManyRequests',
        `repository ${session.name} already receives ${active} uploads; retry later`,
        undefined,
        { 'Retry-After': RETRY_AFTER_SECONDS },
      );
    }
    if (session.offset + declaredLength > this.limits.maxBytes) return this.tooLarge(uploadId);
    this.streaming.set(session.name, active + 1);
    const { stream, done } = await this.driver.appendStream(uploadDataPath(uploadId), session.offset);
    const hash = session.hash;
    let received = 0;
    let oversized = false;
    // A plain listener beside the pipe (both attach before the body starts flowing): cheaper per
    // chunk than a transform stage, and the hash sees exactly the bytes the file gets, in order.
    const onData = (chunk: Buffer) => {
      hash?.update(chunk);
      received += chunk.length;
      if (session.offset + received > this.limits.maxBytes && !oversized) {
        oversized = true;
        body.destroy(new OciError('BlobTooLarge'));
      }
    };
    body.on('data', onData);
    try {
      await pipeline(body, stream);
      await done;
    } catch (error) {
      if (oversized) return await this.tooLarge(uploadId);
      // The file may hold part of the chunk: forget the running hash and re-read the offset.
      session.hash = undefined;
      session.offset = (await this.driver.stat(uploadDataPath(uploadId)))?.size ?? 0;
      throw error;
    } finally {
      body.off('data', onData);
      this.observer.bytesReceived(received);
      const left = (this.streaming.get(session.name) ?? 1) - 1;
      if (left === 0) this.streaming.delete(session.name);
      else this.streaming.set(session.name, left);
    }
    session.offset += received;
    return session.offset;
  }

  /** Discards an upload that passed the size limit: nothing of it stays or becomes visible. */
  private async tooLarge(uploadId: string): Promise<never> {
    await this.discard(uploadId);
    throw new OciError('BlobTooLarge', `blob exceeds the upload size limit of ${this.limits.maxBytes} bytes`);
  }

  private async hashFile(uploadId: string, algorithm: string): Promise<string> {
    const hash = createHash(algorithm);
    const stat = await this.driver.stat(uploadDataPath(uploadId));
    if (stat === undefined || stat.size === 0) return hash.digest('hex');
    await pipeline(this.driver.readStream(uploadDataPath(uploadId)), hash);
    return hash.digest('hex');
  }
}
