/**
 * HTTP/1.1 GETs for the pull-through cache's upstream bodies, read in large pieces.
 *
 * node:http reads a socket 64 KiB at a time into a fresh buffer and runs its parser and a
 * `Readable` push per read: a cold pull of 256 MiB is ~4,100 of each, and that per-read work was
 * most of our mirror's CPU per MiB (twice Distribution's). Here the socket reads into 1 MiB slabs
 * (net/tls `onread`), a body is cut out of them as views (no copy) and each view is pushed once:
 * ~300 pushes for the same blob and no parser over the body bytes. A consumer that is done with
 * every use of a chunk (its writes completed) hands it back with `recycle`; a slab whose chunks
 * all came back is read into again, so a long body touches the same few MiB instead of fresh
 * memory per read (fresh slabs cost ~0.4 ms of CPU per MiB here in page faults and GC). A chunk
 * never handed back is simply collected: forgetting costs speed, never correctness; handing one
 * back while a write still holds it would hand that write other bytes, so only the last use does.
 *
 * What it speaks: one GET at a time per connection (no pipelining), bodies framed by
 * Content-Length, `chunked`, or the end of the connection; 1xx answers skipped; idle
 * connections kept per origin for a few seconds. What it refuses as a protocol error (the
 * caller sees a failed request or a body that errors, never a wrong body): a head over 64 KiB,
 * a malformed status or header line, folded headers, a transfer coding other than `chunked`,
 * Content-Length together with Transfer-Encoding or twice with different values, malformed
 * chunk framing. Header values we send are checked for CR, LF and NUL (a token from a hostile
 * token endpoint must not add headers).
 */
import net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';

/** Socket reads go into slabs of this size. */
const SLAB_BYTES = 1024 * 1024;
/** A slab's rest is used for the next read while at least this much is left. */
const MIN_READ_BYTES = 64 * 1024;
/** Status line and headers of one answer, at most. */
const MAX_HEAD_BYTES = 64 * 1024;
/** A chunk-size line or the trailer section, at most. */
const MAX_CHUNK_LINE_BYTES = 1024;
const MAX_TRAILER_BYTES = 16 * 1024;
/** Informational (1xx) answers skipped before the real one. */
const MAX_INFORMATIONAL = 8;
/** Slabs kept for reuse by one pool, at most. */
const FREE_SLABS = 8;
/** Idle connections kept per origin, and for how long. */
const IDLE_PER_ORIGIN = 4;
const IDLE_MS = 4_000;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [^\r\n]*)?$/;
/** What a header value we send may not hold. */
const FORBIDDEN_IN_VALUE = /[\r\n\0]/;
// eslint-disable-next-line no-control-regex -- a received value may hold HTAB, no other control
const CONTROL_IN_RECEIVED = /[\0-\x08\x0a-\x1f\x7f]/;
/** At most 13 hex digits: every size stays an exact integer (below 2^53). */
const CHUNK_SIZE = /^([0-9a-fA-F]{1,13})(?:[ \t]*;[^\r\n]*)?$/;

/** A slab and the chunks cut from it that are still out. */
interface Slab {
  readonly memory: Buffer;
  out: number;
  /** No connection reads into it any more. */
  retired: boolean;
}

/** Slabs to read into, and the ones whose chunks all came back. */
class SlabPool {
  private readonly free: Buffer[] = [];
  private readonly slabs = new WeakMap<ArrayBufferLike, Slab>();

  take(): Slab {
    const slab: Slab = {
      memory: this.free.pop() ?? Buffer.allocUnsafeSlow(SLAB_BYTES),
      out: 0,
      retired: false,
    };
    this.slabs.set(slab.memory.buffer, slab);
    return slab;
  }

  /** `chunk` goes out to the consumer (once per chunk pushed; it may be any part of a slab). */
  lend(chunk: Buffer): Buffer {
    const slab = this.slabs.get(chunk.buffer);
    if (slab !== undefined) slab.out += 1;
    return chunk;
  }

  retire(slab: Slab): void {
    slab.retired = true;
    this.reuseIfDone(slab);
  }

  /** The consumer is done with `chunk` (one call per chunk it received). */
  recycle(chunk: Buffer): void {
    const slab = this.slabs.get(chunk.buffer);
    if (slab === undefined || slab.out === 0) return;
    slab.out -= 1;
    this.reuseIfDone(slab);
  }

  private reuseIfDone(slab: Slab): void {
    if (!slab.retired || slab.out > 0) return;
    this.slabs.delete(slab.memory.buffer);
    if (this.free.length < FREE_SLABS) this.free.push(slab.memory);
  }
}

/** The answer's head and its body; a `Readable` of the body's bytes. */
export class Http1Response extends Readable {
  constructor(
    readonly statusCode: number,
    /** Lower-cased names; repeated headers joined with ", ". */
    readonly headers: Record<string, string | undefined>,
    private readonly onRead: () => void,
    private readonly onDestroy: (error: Error | null) => void,
    private readonly slabs: SlabPool,
  ) {
    super({ highWaterMark: 4 * SLAB_BYTES });
  }

  /**
   * Hands back a chunk of this body once nothing uses it any more (every write of it completed):
   * its memory is read into again. Once per chunk at most; never calling it is always safe.
   */
  recycle(chunk: Buffer): void {
    this.slabs.recycle(chunk);
  }

  override _read(): void {
    this.onRead();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.onDestroy(error);
    callback(error);
  }
}

class ProtocolError extends Error {
  override name = 'ProtocolError';
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const error = new Error('The operation was aborted');
  error.name = 'AbortError';
  return error;
}

/** What a connection's reads are handed to while a request owns it. */
interface Reader {
  /** Bytes read (a view of a slab); returns false to pause the socket. */
  data(bytes: Buffer): boolean;
  /** The peer ended the connection. */
  end(): void;
  error(error: Error): void;
}

/** One socket, reading into slabs, owned by at most one request at a time. */
class Connection {
  readonly socket: net.Socket;
  private slab: Slab | undefined;
  private used = 0;
  reader: Reader | undefined;
  /** Bytes were received on this connection (a failure before that on a reused one is retried). */
  answered = false;
  reused = false;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    url: URL,
    readonly slabs: SlabPool,
    onGone: (connection: Connection) => void,
  ) {
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const secure = url.protocol === 'https:';
    const port = Number(url.port || (secure ? 443 : 80));
    const onread: net.OnReadOpts = {
      buffer: () => this.nextBuffer(),
      callback: (nread: number, buffer: Uint8Array) => {
        this.used += nread;
        this.answered = true;
        const bytes = Buffer.from(buffer.buffer, buffer.byteOffset, nread);
        if (this.reader === undefined) {
          // Bytes on an idle connection: nothing asked for them.
          this.socket.destroy();
          return false;
        }
        const reader = this.reader;
        const wantsMore = reader.data(bytes);
        // The answer ended inside this read and the connection went idle (or was closed): its
        // consumer's backpressure is no longer this socket's, which must keep reading to notice
        // the server closing it (a paused idle socket would hang the next request on it).
        return this.reader === reader ? wantsMore : !this.socket.destroyed;
      },
    };
    this.socket = secure
      ? // tls.connect takes `onread` (it is handed to the TLSSocket), its typings do not say so.
        tls.connect({
          host,
          port,
          servername: net.isIP(host) === 0 ? host : undefined,
          ALPNProtocols: ['http/1.1'],
          onread,
        } as tls.ConnectionOptions)
      : net.connect({ host, port, onread });
    this.socket.setNoDelay(true);
    this.socket.on('end', () => {
      this.reader?.end();
      this.socket.destroy();
    });
    this.socket.on('error', (error: Error) => this.reader?.error(error));
    this.socket.on('close', () => {
      clearTimeout(this.idleTimer);
      if (this.slab !== undefined) this.slabs.retire(this.slab);
      this.reader?.error(new Error('upstream closed the connection'));
      onGone(this);
    });
  }

  private nextBuffer(): Buffer {
    if (this.slab === undefined || SLAB_BYTES - this.used < MIN_READ_BYTES) {
      if (this.slab !== undefined) this.slabs.retire(this.slab);
      this.slab = this.slabs.take();
      this.used = 0;
    }
    return this.slab.memory.subarray(this.used);
  }

  idle(forget: () => void): void {
    this.reader = undefined;
    // An idle connection never keeps the process alive (as node:http's agent does it).
    this.socket.unref();
    this.socket.resume();
    this.idleTimer = setTimeout(() => {
      forget();
      this.socket.destroy();
    }, IDLE_MS);
    this.idleTimer.unref();
  }

  take(): void {
    clearTimeout(this.idleTimer);
    this.socket.ref();
    this.reused = true;
    this.answered = false;
  }
}

type BodyFraming =
  { kind: 'none' } | { kind: 'length'; remaining: number } | { kind: 'chunked' } | { kind: 'close' };

/** `value` without leading and trailing SP and HTAB (a loop: a trimming regex backtracks on long runs). */
function trimSpaces(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === ' ' || value[start] === '\t')) start += 1;
  while (end > start && (value[end - 1] === ' ' || value[end - 1] === '\t')) end -= 1;
  return value.slice(start, end);
}

/** Parses a head (status line and headers, without the blank line). */
function parseHead(text: string): {
  status: number;
  minor: number;
  headers: Record<string, string | undefined>;
} {
  const lines = text.split('\r\n');
  const status = STATUS_LINE.exec(lines[0] ?? '');
  if (status === null) throw new ProtocolError('upstream sent a malformed status line');
  const headers: Record<string, string | undefined> = Object.create(null) as Record<string, string>;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon);
    if (colon <= 0 || !TOKEN.test(name)) throw new ProtocolError('upstream sent a malformed header line');
    const value = trimSpaces(line.slice(colon + 1));
    if (CONTROL_IN_RECEIVED.test(value))
      throw new ProtocolError('upstream sent a control character in a header');
    const key = name.toLowerCase();
    const before = headers[key];
    if (key === 'content-length' && before !== undefined && before !== value)
      throw new ProtocolError('upstream sent two different Content-Length headers');
    headers[key] = before === undefined || key === 'content-length' ? value : `${before}, ${value}`;
  }
  return { status: Number(status[2]), minor: Number(status[1]), headers };
}

function framingOf(status: number, headers: Record<string, string | undefined>): BodyFraming {
  if (status === 204 || status === 304) return { kind: 'none' };
  const coding = headers['transfer-encoding'];
  const length = headers['content-length'];
  if (coding !== undefined) {
    if (length !== undefined) throw new ProtocolError('upstream sent Content-Length with Transfer-Encoding');
    if (coding.toLowerCase() !== 'chunked')
      throw new ProtocolError(`upstream sent an unsupported transfer coding (${coding})`);
    return { kind: 'chunked' };
  }
  if (length !== undefined) {
    if (!/^\d{1,15}$/.test(length)) throw new ProtocolError('upstream sent a malformed Content-Length');
    return { kind: 'length', remaining: Number(length) };
  }
  return { kind: 'close' };
}

/** Decodes a `chunked` body: hands its data pieces (views of the input) to `take`. */
class ChunkedDecoder {
  private state: 'size' | 'data' | 'data-end' | 'trailer' | 'done' = 'size';
  private line = '';
  private remaining = 0;
  private trailerBytes = 0;

  get done(): boolean {
    return this.state === 'done';
  }

  /** Feeds bytes; returns how many were left over past the body's end. */
  feed(bytes: Buffer, take: (piece: Buffer) => void): number {
    let at = 0;
    while (at < bytes.length && this.state !== 'done') {
      if (this.state === 'data') {
        const length = Math.min(this.remaining, bytes.length - at);
        take(bytes.subarray(at, at + length));
        at += length;
        this.remaining -= length;
        if (this.remaining === 0) this.state = 'data-end';
        continue;
      }
      // Line-oriented states: take bytes up to the next LF.
      const lf = bytes.indexOf(10, at);
      const end = lf === -1 ? bytes.length : lf;
      this.line += bytes.toString('latin1', at, end);
      at = lf === -1 ? bytes.length : lf + 1;
      const limit = this.state === 'trailer' ? MAX_TRAILER_BYTES - this.trailerBytes : MAX_CHUNK_LINE_BYTES;
      if (this.line.length > limit) throw new ProtocolError('upstream sent an overlong chunk line');
      if (lf === -1) break;
      if (!this.line.endsWith('\r')) throw new ProtocolError('upstream sent a chunk line without CRLF');
      const line = this.line.slice(0, -1);
      this.line = '';
      if (this.state === 'data-end') {
        if (line !== '') throw new ProtocolError('upstream sent chunk data longer than its size');
        this.state = 'size';
      } else if (this.state === 'size') {
        const size = CHUNK_SIZE.exec(line);
        if (size === null) throw new ProtocolError('upstream sent a malformed chunk size');
        this.remaining = Number.parseInt(size[1] ?? '', 16);
        this.state = this.remaining === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        this.state = 'done';
      } else {
        this.trailerBytes += line.length + 2;
      }
    }
    return bytes.length - at;
  }
}

/** Idle connections per origin. */
export class Http1Pool {
  private readonly idle = new Map<string, Connection[]>();
  private readonly slabs = new SlabPool();

  private origin(url: URL): string {
    return `${url.protocol}//${url.host}`;
  }

  private connection(url: URL): Connection {
    const key = this.origin(url);
    const kept = this.idle.get(key);
    let reused = kept?.pop();
    while (reused?.socket.destroyed === true) reused = kept?.pop();
    if (kept !== undefined && kept.length === 0) this.idle.delete(key);
    if (reused !== undefined) {
      reused.take();
      return reused;
    }
    return this.fresh(url);
  }

  private fresh(url: URL): Connection {
    const key = this.origin(url);
    return new Connection(url, this.slabs, (gone) => this.forget(key, gone));
  }

  private forget(key: string, connection: Connection): void {
    const kept = this.idle.get(key);
    if (kept === undefined) return;
    const at = kept.indexOf(connection);
    if (at !== -1) kept.splice(at, 1);
    if (kept.length === 0) this.idle.delete(key);
  }

  private keep(url: URL, connection: Connection): void {
    const key = this.origin(url);
    const kept = this.idle.get(key) ?? [];
    if (kept.length >= IDLE_PER_ORIGIN || connection.socket.destroyed) {
      connection.socket.destroy();
      return;
    }
    kept.push(connection);
    this.idle.set(key, kept);
    connection.idle(() => this.forget(key, connection));
  }

  /** Closes every idle connection. */
  close(): void {
    for (const kept of this.idle.values()) for (const connection of kept) connection.socket.destroy();
    this.idle.clear();
  }

  /**
   * Sends a GET of `url` and resolves with the answer once its head arrived (1xx skipped). The
   * body is the caller's to read or destroy; `signal` aborts the request and, later, the body.
   * A reused connection that fails before answering is replaced once (the server may have
   * closed it while it was idle).
   */
  async get(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<Http1Response> {
    const request = requestText(url, headers);
    try {
      return await this.exchange(url, request, signal, true);
    } catch (error) {
      if (!(error instanceof RetryOnFreshConnection)) throw error;
      return this.exchange(url, request, signal, false);
    }
  }

  private exchange(
    url: URL,
    request: string,
    signal: AbortSignal,
    mayReuse: boolean,
  ): Promise<Http1Response> {
    if (signal.aborted) return Promise.reject(abortError(signal));
    const connection = mayReuse ? this.connection(url) : this.fresh(url);
    return new Promise<Http1Response>((resolve, reject) => {
      /** Bytes of a head that has not ended yet (copies: their slabs are read into again). */
      let headParts: Buffer[] = [];
      let headBytes = 0;
      let informational = 0;
      let response: Http1Response | undefined;
      let framing: BodyFraming = { kind: 'none' };
      const chunked = new ChunkedDecoder();
      let finished = false;
      let reusable = false;

      const fail = (error: Error) => {
        signal.removeEventListener('abort', onAbort);
        connection.reader = undefined;
        connection.socket.destroy();
        if (response === undefined) {
          reject(
            connection.reused && !connection.answered && !signal.aborted
              ? new RetryOnFreshConnection()
              : error,
          );
        } else if (!finished) {
          finished = true;
          response.destroy(error);
        }
      };
      const onAbort = () => fail(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });

      const complete = (rest: number) => {
        finished = true;
        signal.removeEventListener('abort', onAbort);
        connection.reader = undefined;
        response?.push(null);
        if (reusable && rest === 0) this.keep(url, connection);
        else connection.socket.destroy();
      };

      /** Body bytes; returns false when the consumer wants no more for now. */
      const body = (bytes: Buffer): boolean => {
        const target = response as Http1Response;
        const push = (piece: Buffer) => target.push(this.slabs.lend(piece));
        if (framing.kind === 'close') return push(bytes);
        if (framing.kind === 'length') {
          const take = Math.min(framing.remaining, bytes.length);
          framing.remaining -= take;
          const wantsMore = take === 0 || push(take === bytes.length ? bytes : bytes.subarray(0, take));
          if (framing.remaining === 0) complete(bytes.length - take);
          return wantsMore;
        }
        if (framing.kind === 'chunked') {
          // One push per read however many chunks it holds: pushes of tiny chunks (`1\r\nX\r\n`
          // over and over) would each cost a Buffer object while the buffer limit counts bytes.
          const pieces: Buffer[] = [];
          const rest = chunked.feed(bytes, (piece) => void pieces.push(piece));
          const wantsMore =
            pieces.length === 0 ||
            (pieces.length === 1 ? push(pieces[0] as Buffer) : target.push(Buffer.concat(pieces)));
          if (chunked.done) complete(rest);
          return wantsMore;
        }
        complete(bytes.length);
        return true;
      };

      const onHead = (bytes: Buffer): boolean => {
        // Only the last 3 bytes before this read can start the blank line: each byte is searched
        // once, whatever the number of reads the head takes.
        const last = headParts[headParts.length - 1];
        const carry = last === undefined ? 0 : Math.min(3, last.length);
        const window = carry === 0 ? bytes : Buffer.concat([(last as Buffer).subarray(-carry), bytes]);
        const found = window.indexOf('\r\n\r\n', 0, 'latin1');
        if (found === -1) {
          headBytes += bytes.length;
          if (headBytes > MAX_HEAD_BYTES) throw new ProtocolError('upstream sent a head over 64 KiB');
          headParts.push(Buffer.from(bytes));
          return true;
        }
        const end = headBytes - carry + found;
        if (end > MAX_HEAD_BYTES) throw new ProtocolError('upstream sent a head over 64 KiB');
        const head = headParts.length === 0 ? bytes : Buffer.concat([...headParts, bytes]);
        headParts = [];
        headBytes = 0;
        const parsed = parseHead(head.toString('latin1', 0, end));
        const rest = head.subarray(end + 4);
        if (parsed.status >= 100 && parsed.status < 200) {
          if (parsed.status === 101 || (informational += 1) > MAX_INFORMATIONAL)
            throw new ProtocolError(`upstream answered ${parsed.status}`);
          return rest.length === 0 ? true : onHead(rest);
        }
        framing = framingOf(parsed.status, parsed.headers);
        const options = (parsed.headers.connection ?? '').split(',');
        // Kept only where the framing says exactly where the answer ends: a 204/304 announcing a
        // body, or one ended by the close, could leave bytes that read as the next answer.
        const bodiless = framing.kind === 'none';
        const announcesBody =
          parsed.headers['transfer-encoding'] !== undefined ||
          (parsed.headers['content-length'] ?? '0') !== '0';
        reusable =
          parsed.minor === 1 &&
          framing.kind !== 'close' &&
          !(bodiless && announcesBody) &&
          !options.some((option) => trimSpaces(option).toLowerCase() === 'close');
        response = new Http1Response(
          parsed.status,
          parsed.headers,
          () => {
            if (!finished) connection.socket.resume();
          },
          (error) => {
            if (finished) return;
            finished = true;
            signal.removeEventListener('abort', onAbort);
            connection.reader = undefined;
            connection.socket.destroy(error ?? undefined);
          },
          this.slabs,
        );
        // A body error must not go unhandled when the caller only looked at the head.
        response.on('error', () => undefined);
        resolve(response);
        if (framing.kind === 'none' || (framing.kind === 'length' && framing.remaining === 0)) {
          complete(rest.length);
          return true;
        }
        return rest.length === 0 ? true : body(rest);
      };

      connection.reader = {
        data: (bytes) => {
          try {
            return response === undefined ? onHead(bytes) : body(bytes);
          } catch (error) {
            fail(error as Error);
            return false;
          }
        },
        end: () => {
          if (response !== undefined && framing.kind === 'close' && !finished) complete(0);
          else fail(new Error('upstream closed the connection before the answer ended'));
        },
        error: (error) => fail(error),
      };
      connection.socket.write(request);
    });
  }
}

/** A reused connection failed before any answer: the request goes once more on a new one. */
class RetryOnFreshConnection extends Error {}

function requestText(url: URL, headers: Record<string, string>): string {
  let text = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name) || FORBIDDEN_IN_VALUE.test(value))
      throw new TypeError(`invalid character in header ${JSON.stringify(name)}`);
    text += `${name}: ${value}\r\n`;
  }
  return `${text}\r\n`;
}
