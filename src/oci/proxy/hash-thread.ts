/**
 * Digests of blobs in flight, computed on a worker thread. A cold pull's main thread handles
 * every chunk (socket read, client write, file write) and is busy most of the pull; the hash
 * (about 15% of its time in the profile) runs beside it.
 *
 * No message per chunk: each flight has a ring buffer in shared memory. The main thread copies
 * a chunk in (a memcpy: microseconds per 64 KiB) and advances its `written` counter; the worker,
 * asleep on a shared doorbell rung once a MiB waits (not per chunk), hashes what is there and
 * advances `hashed`. (Handing 1 MiB batches
 * over with postMessage cost the main thread more than hashing them itself.) Starts, digests and
 * aborts go over a message port the worker polls when it wakes. One worker serves every flight of
 * a cache; it is unref'd, so it never keeps the process alive.
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';

/** Bytes of one flight's ring (a power of two: counters wrap at 2^32 together with it). */
export const RING_BYTES = 8 * 1024 * 1024;

/** A sleeping worker is woken once this much waits in a ring (or for a digest). */
const WAKE_BYTES = 1024 * 1024;

/** The worker (plain JS, so it runs without a TS loader). */
const WORKER_SOURCE = `
const { workerData, parentPort, receiveMessageOnPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { doorbell, port, ringBytes } = workerData;
const bell = new Int32Array(doorbell);
const rings = new Map();
const handle = (message) => {
  const { id, op } = message;
  if (op === 'start') {
    try {
      rings.set(id, {
        hash: createHash(message.algorithm),
        data: new Uint8Array(message.data),
        counters: new Int32Array(message.counters),
        total: undefined,
      });
    } catch (error) {
      parentPort.postMessage({ id, error: String(error) });
    }
  } else if (op === 'digest') {
    const ring = rings.get(id);
    if (ring !== undefined) ring.total = message.total;
    else parentPort.postMessage({ id, error: 'no such hash' });
  } else if (op === 'abort') rings.delete(id);
};
const waiting = () => {
  for (const ring of rings.values())
    if ((Atomics.load(ring.counters, 0) >>> 0) !== (ring.counters[1] >>> 0)) return true;
  return false;
};
for (;;) {
  for (let next = receiveMessageOnPort(port); next !== undefined; next = receiveMessageOnPort(port))
    handle(next.message);
  let progressed = false;
  for (const [id, ring] of rings) {
    const written = Atomics.load(ring.counters, 0) >>> 0;
    let hashed = ring.counters[1] >>> 0;
    while (hashed !== written) {
      const at = hashed % ringBytes;
      const length = Math.min(((written - hashed) >>> 0), ringBytes - at);
      ring.hash.update(ring.data.subarray(at, at + length));
      hashed = (hashed + length) >>> 0;
      progressed = true;
    }
    if (progressed) {
      Atomics.store(ring.counters, 1, hashed | 0);
      Atomics.notify(ring.counters, 1);
    }
    if (ring.total !== undefined && hashed === ring.total >>> 0) {
      rings.delete(id);
      parentPort.postMessage({ id, hex: ring.hash.digest('hex') });
    }
  }
  if (progressed) continue;
  // Asleep until the doorbell rings. The flag is set before the last look at the rings: bytes
  // written after that look find it set and ring (the timeout only bounds a missed ring).
  const rung = Atomics.load(bell, 0);
  Atomics.store(bell, 1, 1);
  if (!waiting()) Atomics.wait(bell, 0, rung, 1000);
  Atomics.store(bell, 1, 0);
}
`;

/** `Atomics.waitAsync` (Node 16+; not in this project's TypeScript lib). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      array: Int32Array,
      index: number,
      value: number,
      timeoutMs: number,
    ): { async: false } | { async: true; value: Promise<string> };
  }
).waitAsync;

/** One flight's running digest. */
export interface RunningHash {
  update(chunk: Buffer): void;
  /** The hex digest of every byte given to `update`. */
  digest(): Promise<string>;
  /** Forgets the hash (a failed flight). */
  abort(): void;
  /** Bytes given to `update` and not hashed yet. */
  readonly backlog: number;
  /** Resolves once the backlog is at most `bytes` (or the worker is gone: `digest` then fails). */
  caughtUp(bytes: number): Promise<void>;
}

interface Pending {
  resolve(hex: string): void;
  reject(error: Error): void;
}

/** The worker thread and the digests it owes. */
export class HashThread {
  private worker: Worker | undefined;
  private port: MessagePort | undefined;
  /** [rings, worker asleep (1) or not]. */
  private readonly doorbell = new Int32Array(new SharedArrayBuffer(8));
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();

  private ensureWorker(): { worker: Worker; port: MessagePort } {
    if (this.worker !== undefined && this.port !== undefined) return { worker: this.worker, port: this.port };
    const channel = new MessageChannel();
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { doorbell: this.doorbell.buffer, port: channel.port2, ringBytes: RING_BYTES },
      transferList: [channel.port2],
    });
    worker.unref();
    channel.port1.unref();
    worker.on('message', (message: { id: number; hex?: string; error?: string }) => {
      const waiting = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.hex !== undefined) waiting?.resolve(message.hex);
      else waiting?.reject(new Error(`hashing failed: ${message.error}`));
    });
    const lost = (error: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.port = undefined;
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`hash worker exited (${code})`)));
    this.worker = worker;
    this.port = channel.port1;
    return { worker, port: channel.port1 };
  }

  /** Wakes the worker: new bytes or a message. */
  private ring(): void {
    Atomics.add(this.doorbell, 0, 1);
    Atomics.notify(this.doorbell, 0);
  }

  /**
   * Wakes the worker for new bytes once `backlog` is worth a wake-up: a wake per 64 KiB chunk
   * (a futex and a context switch each) cost more of the main thread than the copy.
   */
  private nudge(backlog: number): void {
    if (backlog >= WAKE_BYTES && Atomics.load(this.doorbell, 1) === 1) this.ring();
  }

  /** Boots the worker ahead of the first digest. */
  prestart(): void {
    this.ensureWorker();
  }

  /** Starts a digest with `algorithm` (`sha256`, `sha512`). */
  start(algorithm: string): RunningHash {
    const { worker, port } = this.ensureWorker();
    const id = this.nextId++;
    const data = new Uint8Array(new SharedArrayBuffer(RING_BYTES));
    /** [written, hashed]: byte counts modulo 2^32. */
    const counters = new Int32Array(new SharedArrayBuffer(8));
    port.postMessage({ id, op: 'start', algorithm, data: data.buffer, counters: counters.buffer });
    let written = 0;
    let total = 0;
    let lost = false;
    const backlog = () => (written - (Atomics.load(counters, 1) >>> 0)) >>> 0;
    const gone = () => lost || this.worker !== worker;
    this.ring();
    return {
      update: (chunk) => {
        total += chunk.length;
        let offset = 0;
        while (offset < chunk.length) {
          const hashed = Atomics.load(counters, 1);
          const free = RING_BYTES - ((written - (hashed >>> 0)) >>> 0);
          if (free === 0) {
            // Only a chunk larger than the room left waits here (the flight pauses its upstream
            // at half a ring, and upstream chunks are at most 1 MiB, `http1-get.ts`): block until
            // the worker made room.
            if (gone()) return; // digest() reports it
            this.ring();
            Atomics.wait(counters, 1, hashed, 100);
            continue;
          }
          const at = written % RING_BYTES;
          const take = Math.min(free, chunk.length - offset, RING_BYTES - at);
          data.set(chunk.subarray(offset, offset + take), at);
          offset += take;
          written = (written + take) >>> 0;
          Atomics.store(counters, 0, written | 0);
        }
        this.nudge(backlog());
      },
      digest: () => {
        if (gone()) return Promise.reject(new Error('hash worker lost'));
        return new Promise<string>((resolve, reject) => {
          this.pending.set(id, { resolve, reject });
          port.postMessage({ id, op: 'digest', total });
          this.ring();
        });
      },
      abort: () => {
        lost = true;
        port.postMessage({ id, op: 'abort' });
        this.ring();
      },
      get backlog() {
        return backlog();
      },
      caughtUp: async (bytes) => {
        for (;;) {
          const hashed = Atomics.load(counters, 1);
          if ((written - (hashed >>> 0)) >>> 0 <= bytes || gone()) return;
          const wait = waitAsync(counters, 1, hashed, 100);
          if (wait.async) await wait.value;
        }
      },
    };
  }

  /** Stops the worker (tests, shutdown); digests still owed are rejected. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.port?.close();
    this.port = undefined;
    for (const waiting of this.pending.values()) waiting.reject(new Error('hash worker closed'));
    this.pending.clear();
    await worker?.terminate();
  }
}
