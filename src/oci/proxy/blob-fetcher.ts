/**
 * Single-flight blob fetches. However many clients ask for an uncached digest at once, one
 * upstream GET runs; its bytes are hashed and appended to a temp file, and
 *
 *   - clients that are caught up ("live") get each chunk as it arrives, straight from memory;
 *   - clients that joined late or fell behind read the temp file as it grows, and go live once
 *     they catch up (a slow client never slows the fetch: it is dropped back to file reads); on
 *     storage that cannot read a file while it grows (S3), they read a local spool file that
 *     gets the same bytes (`spool.ts`), so they never wait for the whole blob either;
 *   - the last chunk is held back until the whole blob is verified against its digest, so no
 *     client ever receives a complete body with the wrong content (it is released before the
 *     fsync and the rename into place: those no longer hold every pull);
 *   - a client that disconnects only stops its own stream; the fetch goes on for the others and
 *     for the cache;
 *   - an upstream that dies, sends too little or too much, or sends other bytes fails the flight:
 *     every waiting client's connection is cut (their headers are out) and the temp file is
 *     removed, so nothing becomes visible under blobs/.
 *
 * A process killed mid-fetch leaves only a temp file under _tmp/ (purged with stale uploads);
 * the next pull starts a new flight.
 */
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Logger } from '../../shared/logger.js';
import { OciError } from '../errors.js';
import type { Digest } from '../domain/names.js';
import type { ReadableFile, StorageDriver } from '../storage/driver.js';
import { TMP_DIR, blobPath } from '../storage/layout.js';
import { UpstreamFailure } from './upstream-client.js';
import { drained } from '../../shared/drained.js';
import { HashThread, RING_BYTES, type RunningHash } from './hash-thread.js';
import { Spool, purgeSpools } from './spool.js';

/** Resolves once `stream` drained; rejects when it fails first. */
function drainedOrFailed(stream: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (error?: Error) => {
      stream.off('drain', done);
      stream.off('error', done);
      if (error) reject(error);
      else resolve();
    };
    stream.on('drain', done);
    stream.on('error', done);
  });
}

/**
 * Feeds every chunk of `body` to `take`, in flowing mode: a `data` listener costs far less per
 * chunk than the promise and stream machinery of a `for await`. A promise from `take`
 * pauses the body until it settles; a throw or rejection destroys the body. Resolves at the end
 * of the body, rejects when it fails or closes early.
 */
function consume(body: Readable, take: (chunk: Buffer) => Promise<void> | undefined): Promise<void> {
  const done = finished(body);
  body.on('data', (chunk: Buffer) => {
    let wait: Promise<void> | undefined;
    try {
      wait = take(chunk);
    } catch (error) {
      body.destroy(error as Error);
      return;
    }
    if (wait === undefined) return;
    body.pause();
    wait.then(
      () => body.resume(),
      (error: unknown) => body.destroy(error as Error),
    );
  });
  return done;
}

/** Where a flight's bytes come from and what happens once they are stored. */
export interface FlightSource {
  /** Host of the upstream, for logs and errors. */
  readonly upstream: string;
  /** Starts the upstream GET; resolves once it answered 200, throws `OciError`/`UpstreamFailure`. */
  open(signal: AbortSignal): Promise<UpstreamBody>;
  /** Called for every chunk received (metrics). */
  bytesReceived(count: number): void;
  /** Runs after the verified blob is in place (links it into the repository). */
  stored(): Promise<void>;
  /** Called once when the flight fails after its headers were received. */
  failed(error: Error): void;
}

/** The upstream's answer: its Content-Length, if any, and the body. */
export interface UpstreamBody {
  readonly size: number | undefined;
  readonly body: Readable;
  /** Takes a chunk of the body back once every use of it is done (`Http1Response.recycle`). */
  readonly recycle?: (chunk: Buffer) => void;
}

/**
 * A chunk and the writes still holding it: when the last one completed, its memory goes back to
 * the upstream reader (`UpstreamBody.recycle`). A hold that is never dropped (a failed flight)
 * only means the memory is collected instead.
 */
class HeldChunk {
  private holds = 1;
  constructor(
    readonly bytes: Buffer,
    private readonly recycle: ((chunk: Buffer) => void) | undefined,
  ) {}

  /** One more use; the returned callback (a write's) ends it. */
  hold(): () => void {
    this.holds += 1;
    let dropped = false;
    return () => {
      if (dropped) return;
      dropped = true;
      this.drop();
    };
  }

  /** Ends the first use (the flight's own). */
  drop(): void {
    this.holds -= 1;
    if (this.holds === 0) this.recycle?.(this.bytes);
  }
}

/** A live client is dropped back to file reads when this much is queued on its socket. */
const LIVE_HIGH_WATER = 8 * 1024 * 1024;
/** Bytes received but not yet on disk before the upstream read pauses. */
const WRITE_AHEAD = 16 * 1024 * 1024;
/**
 * Temp files of fetches older than this are abandoned (a process killed mid-fetch): a live
 * fetch appends at least every 2 x IDLE_TIMEOUT_MS, so its mtime is never this old.
 */
const ABANDONED_AFTER_MS = 10 * 60 * 1000;
/** Catch-up reads from the temp file, per turn. */
const READ_CHUNK = 1024 * 1024;
/** Upstream bytes are added to the metrics in steps of this much. */
const COUNT_EVERY = 1024 * 1024;
/** An upstream body that sends nothing for this long (up to twice as long) is abandoned. */
const IDLE_TIMEOUT_MS = 30_000;

interface Subscriber {
  readonly res: ServerResponse;
  position: number;
  readonly end: number;
}

/** One upstream fetch of one digest and the clients reading it. */
export class Flight {
  /** Blob size from the upstream's Content-Length, or undefined when it sent none. */
  size: number | undefined;
  /** Bytes received from upstream, appended to the temp file, and released to clients. */
  private received = 0;
  private written = 0;
  private released = 0;
  private state: 'starting' | 'streaming' | 'done' | 'failed' = 'starting';
  private error: Error | undefined;
  private readonly live = new Set<Subscriber>();
  private waiters: Array<() => void> = [];
  private readonly tmp = `${TMP_DIR}/proxy-${randomUUID()}`;
  private tempUnreadable = false;
  /** Local copy for late readers, when the storage cannot read its temp file while it grows. */
  private spool: Spool | undefined;
  /** Every byte received and verified (the blob may still be on its way into place). */
  private complete = false;
  /** Settles once the size is known (headers received) or the flight failed before that. */
  readonly ready: Promise<void>;
  /** Settles when the blob is stored (resolves) or the flight failed (rejects). */
  readonly done: Promise<void>;

  constructor(
    private readonly driver: StorageDriver,
    readonly digest: Digest,
    source: FlightSource,
    /** Largest blob accepted from the upstream (REGISTRY_MAX_UPLOAD_BYTES, as for pushes). */
    private readonly maxBytes: number = Number.MAX_SAFE_INTEGER,
    /** Where the digest is computed (off the event loop). */
    private readonly hashes: HashThread,
    /** Directory for a local spool (see `spool.ts`); undefined when the temp file is readable. */
    private readonly spoolDir?: string,
  ) {
    let resolveReady!: () => void;
    let rejectReady!: (error: unknown) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    this.done = this.run(source, resolveReady, rejectReady);
    this.ready.catch(() => undefined);
    this.done.catch(() => undefined);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  private next(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private release(held: HeldChunk): void {
    const chunk = held.bytes;
    const offset = this.released;
    this.released += chunk.length;
    for (const subscriber of this.live) {
      if (subscriber.position !== offset) {
        this.live.delete(subscriber);
        continue;
      }
      const take = Math.min(chunk.length, subscriber.end - offset + 1);
      subscriber.res.write(take === chunk.length ? chunk : chunk.subarray(0, take), held.hold());
      subscriber.position += take;
      if (subscriber.position > subscriber.end || subscriber.res.writableLength > LIVE_HIGH_WATER) {
        this.live.delete(subscriber);
      }
    }
    this.wake();
  }

  private async run(
    source: FlightSource,
    resolveReady: () => void,
    rejectReady: (error: unknown) => void,
  ): Promise<void> {
    const stored = await this.driver.stat(blobPath(this.digest));
    if (stored !== undefined) {
      // Stored by a flight that ended between the caller's lookup and this one.
      this.size = stored.size;
      this.received = this.written = this.released = stored.size;
      this.state = 'done';
      this.complete = true;
      resolveReady();
      await source.stored();
      return;
    }
    const controller = new AbortController();
    let response: UpstreamBody;
    try {
      response = await source.open(controller.signal);
    } catch (error) {
      this.fail(error as Error);
      rejectReady(error);
      throw error;
    }
    if (response.size !== undefined && response.size > this.maxBytes) {
      response.body.destroy();
      const error = new OciError('BlobTooLarge', 'upstream blob exceeds the size limit', {
        limit: this.maxBytes,
      });
      this.fail(error);
      rejectReady(error);
      throw error;
    }
    this.size = response.size;
    this.state = 'streaming';
    resolveReady();

    let idle: NodeJS.Timeout | undefined;
    // One timer for the whole body, not one touch per chunk: when it fires it looks whether
    // bytes arrived since it was set, and sets itself again if so (a stall is noticed after one
    // to two IDLE_TIMEOUT_MS).
    let seen = -1;
    const armIdle = () => {
      idle = setTimeout(() => {
        if (this.received === seen) controller.abort();
        else armIdle();
      }, IDLE_TIMEOUT_MS);
      seen = this.received;
    };
    let append: Awaited<ReturnType<StorageDriver['appendStream']>> | undefined;
    let hash: RunningHash | undefined;
    /** Bytes received and added to the metrics. */
    let counted = 0;
    try {
      [append, this.spool] = await Promise.all([
        this.driver.appendStream(this.tmp, 0),
        this.spoolDir === undefined ? undefined : Spool.create(this.spoolDir),
      ]);
      const stream = append.stream;
      // Clients read what is written to the spool when there is one, else the temp file.
      const readable = this.spool?.stream ?? stream;
      const sinks = this.spool === undefined ? [stream] : [stream, this.spool.stream];
      // Chunks go back to the upstream reader only when every sink lets go of them on its write
      // callback (the spool is a file stream, which does; clients' sockets do).
      const recycle = append.releasesOnCallback ? response.recycle : undefined;
      let streamError: Error | undefined;
      for (const sink of sinks) sink.on('error', (error: Error) => (streamError = error));
      hash = this.hashes.start(this.digest.algorithm);
      const running = hash;
      /** The last chunk, held back from the clients until the next one (or the verified end). */
      let pending: HeldChunk | undefined;
      /** Takes one chunk; returns a promise when the upstream read must pause until it settles. */
      const take = (chunk: Buffer): Promise<void> | undefined => {
        if (this.size !== undefined && this.received + chunk.length > this.size)
          throw new Error('upstream sent more bytes than its Content-Length');
        if (this.received + chunk.length > this.maxBytes)
          throw new Error('upstream blob exceeds the size limit');
        running.update(chunk);
        const held = new HeldChunk(chunk, recycle);
        const end = (this.received += chunk.length);
        // Counted per MiB, not per chunk: a metric update per 64 KiB showed in the profile.
        if (end - counted >= COUNT_EVERY) {
          source.bytesReceived(end - counted);
          counted = end;
        }
        for (const sink of sinks) {
          const written = held.hold();
          sink.write(
            chunk,
            sink !== readable
              ? written
              : (error) => {
                  written();
                  if (error) return;
                  this.written = Math.max(this.written, end);
                  this.wake();
                },
          );
        }
        if (pending !== undefined) {
          this.release(pending);
          pending.drop();
        }
        pending = held;
        if (streamError !== undefined) throw streamError;
        // Up to WRITE_AHEAD bytes may wait for the disk: writes get batched (writev) and the
        // upstream keeps streaming through short stalls of the disk.
        for (const sink of sinks) if (sink.writableLength > WRITE_AHEAD) return drainedOrFailed(sink);
        // Likewise the hash: a starved worker thread must not fill its ring.
        if (running.backlog > RING_BYTES / 2) return running.caughtUp(RING_BYTES / 4);
        return undefined;
      };
      armIdle();
      await consume(response.body, take);
      clearTimeout(idle);
      source.bytesReceived(this.received - counted);
      counted = this.received;
      if (this.size !== undefined && this.received !== this.size)
        throw new Error(`upstream sent ${this.received} of ${this.size} bytes`);
      const hex = await hash.digest();
      if (hex !== this.digest.hex)
        throw new Error(
          `upstream content has digest ${this.digest.algorithm}:${hex}, not ${this.digest.value}`,
        );
      this.size = this.received;
      // Verified: the clients get their last bytes now, while the blob is made durable and moved
      // into place (an fsync of a large file, or on S3 a copy, would otherwise hold every pull).
      if (pending !== undefined) {
        this.release(pending);
        pending.drop();
      }
      this.complete = true;
      this.wake();
      this.spool?.stream.end();
      stream.end();
      await Promise.all([append.done, this.spool === undefined ? undefined : finished(this.spool.stream)]);
      await this.driver.move(this.tmp, blobPath(this.digest));
      await source.stored();
      this.state = 'done';
      this.wake();
    } catch (error) {
      clearTimeout(idle);
      if (this.received > counted) source.bytesReceived(this.received - counted);
      hash?.abort();
      controller.abort();
      response.body.destroy();
      append?.stream.destroy();
      const failure =
        controller.signal.aborted && !(error instanceof UpstreamFailure)
          ? new UpstreamFailure(
              'timeout',
              source.upstream,
              `blob body stalled or failed: ${(error as Error).message}`,
            )
          : (error as Error);
      // The spool goes before the clients are cut (a local unlink): once a client sees the
      // failure, no copy of the bad bytes is left behind.
      await this.spool?.remove().catch(() => undefined);
      this.fail(failure);
      source.failed(failure);
      await this.driver.delete(this.tmp).catch(() => undefined);
      throw failure;
    } finally {
      await this.spool?.remove().catch(() => undefined);
    }
  }

  private fail(error: Error): void {
    this.state = 'failed';
    this.error = error;
    for (const subscriber of this.live) subscriber.res.destroy();
    this.live.clear();
    this.wake();
  }

  /** The state now (a method, so checks after an await are not narrowed away). */
  private phase(): Flight['state'] {
    return this.state;
  }

  /** The reason the flight failed, once it did. */
  get failure(): Error | undefined {
    return this.error;
  }

  private async openSource(): Promise<ReadableFile | undefined> {
    if (this.state === 'done') return this.driver.openRead(blobPath(this.digest));
    if (this.spool !== undefined) {
      try {
        return await this.spool.open();
      } catch (error) {
        // Removed as the flight ended between the check and the open: the blob is in place
        // (or the flight failed, which the caller sees next).
        const state = this.phase();
        if (state === 'done') return this.driver.openRead(blobPath(this.digest));
        if (state === 'failed') return undefined;
        throw error;
      }
    }
    if (this.tempUnreadable) return undefined;
    const file = await this.driver.openRead(this.tmp);
    // A driver that cannot read a file still being written: wait for the stored blob instead.
    if (file === undefined) this.tempUnreadable = true;
    return file;
  }

  /**
   * Streams bytes `[start, end]` of the blob to `res` (headers already written) as they arrive;
   * ends the response when done, cuts it when the flight fails. Returns the bytes sent.
   */
  async stream(res: ServerResponse, start: number, end: number): Promise<number> {
    const subscriber: Subscriber = { res, position: start, end };
    let file: ReadableFile | undefined;
    let closed = res.destroyed;
    const onClose = () => {
      closed = true;
      this.live.delete(subscriber);
      this.wake();
    };
    res.once('close', onClose);
    try {
      while (!closed && subscriber.position <= end) {
        if (this.state === 'failed') {
          res.destroy();
          return subscriber.position - start;
        }
        if (this.live.has(subscriber)) {
          await this.next();
          continue;
        }
        if (this.complete && subscriber.position >= this.received) break;
        if (res.writableLength > LIVE_HIGH_WATER) {
          await drained(res);
          continue;
        }
        const readable = this.state === 'done' ? this.received : Math.min(this.written, this.released);
        if (subscriber.position < readable) {
          if (file === undefined) {
            file = await this.openSource();
            if (file === undefined) {
              if (this.phase() === 'failed') continue;
              if (this.state !== 'done') await this.next();
              else throw new Error('stored blob vanished');
              continue;
            }
          }
          const length = Math.min(READ_CHUNK, readable - subscriber.position, end - subscriber.position + 1);
          const buffer = Buffer.allocUnsafe(length);
          const bytes = await file.read(buffer, subscriber.position);
          if (bytes === 0) throw new Error('blob file shorter than expected');
          if (closed) break;
          subscriber.position += bytes;
          if (!res.write(bytes === length ? buffer : buffer.subarray(0, bytes))) await drained(res);
          continue;
        }
        if (this.state === 'streaming' && subscriber.position === this.released) {
          this.live.add(subscriber);
          continue;
        }
        await this.next();
      }
    } finally {
      res.off('close', onClose);
      this.live.delete(subscriber);
      await file?.close();
    }
    if (!closed) res.end();
    return subscriber.position - start;
  }
}

/** The flights in progress, one per digest. */
export class BlobFetcher {
  private readonly flights = new Map<string, Flight>();
  private readonly hashes = new HashThread();

  constructor(
    private readonly driver: StorageDriver,
    private readonly logger: Logger,
    private readonly maxBytes: number = Number.MAX_SAFE_INTEGER,
    /** Where flights keep a local spool (storage whose temp files are unreadable while growing). */
    private readonly spoolDir?: string,
  ) {
    // Booting a worker costs ~100-300 ms of CPU on a busy machine; done now, it is not paid by
    // the first cold pull (its time to first byte and throughput).
    this.hashes.prestart();
  }

  /** Removes temp files of fetches a killed process left behind (run at start and periodically). */
  async purgeAbandoned(now: () => number): Promise<number> {
    let purged = 0;
    for (const entry of await this.driver.list(TMP_DIR)) {
      if (!entry.startsWith('proxy-')) continue;
      const stat = await this.driver.stat(`${TMP_DIR}/${entry}`);
      if (stat === undefined || now() - stat.mtimeMs <= ABANDONED_AFTER_MS) continue;
      await this.driver.delete(`${TMP_DIR}/${entry}`);
      purged += 1;
    }
    if (this.spoolDir !== undefined) purged += await purgeSpools(this.spoolDir, now() - ABANDONED_AFTER_MS);
    return purged;
  }

  /** Number of fetches in progress (tests, metrics). */
  get inFlight(): number {
    return this.flights.size;
  }

  /**
   * The flight of `digest` from upstream `key`: the one in progress, or a new one from `source`.
   * Keyed per upstream too: another upstream may lack the blob, and one's failure must not fail
   * the other's clients (two flights of one digest rename identical bytes into place).
   */
  fetch(key: string, digest: Digest, source: () => FlightSource): Flight {
    const id = `${key}@${digest.value}`;
    const running = this.flights.get(id);
    if (running !== undefined) return running;
    const flight = new Flight(this.driver, digest, source(), this.maxBytes, this.hashes, this.spoolDir);
    this.flights.set(id, flight);
    flight.done.then(
      () => this.flights.delete(id),
      (error: unknown) => {
        this.flights.delete(id);
        if (!(error instanceof OciError) && !(error instanceof UpstreamFailure))
          this.logger.error({ err: error, digest: digest.value }, 'proxy blob fetch failed');
      },
    );
    return flight;
  }
}
