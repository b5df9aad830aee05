/**
 * Digests of blobs in flight, computed on a worker thread. A cold pull's main thread receives
 * every chunk, writes it to the client and to storage; hashing it there too made the pull
 * CPU-bound on one thread (a third of its work in the profile). Chunks are copied into 1 MiB
 * batches whose memory is transferred (not cloned) to the worker: a copy costs far less than the
 * hash it moves off the event loop. One worker serves every flight of a cache; it is unref'd,
 * so it never keeps the process alive.
 */
import { Worker } from 'node:worker_threads';

/** Bytes gathered before a batch is handed to the worker. */
const BATCH = 1024 * 1024;

/** The worker: one incremental hash per flight id (plain JS, so it runs without a TS loader). */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (message) => {
  const { id, op } = message;
  try {
    if (op === 'start') hashes.set(id, createHash(message.algorithm));
    else if (op === 'update') {
      hashes.get(id).update(new Uint8Array(message.data, 0, message.length));
      parentPort.postMessage({ id, hashed: message.length });
    }
    else if (op === 'digest') {
      const hash = hashes.get(id);
      hashes.delete(id);
      parentPort.postMessage({ id, hex: hash.digest('hex') });
    } else if (op === 'abort') hashes.delete(id);
  } catch (error) {
    hashes.delete(id);
    parentPort.postMessage({ id, error: String(error) });
  }
});
`;

/** One flight's running digest. */
export interface RunningHash {
  update(chunk: Buffer): void;
  /** The hex digest of every byte given to `update`. */
  digest(): Promise<string>;
  /** Forgets the hash (a failed flight). */
  abort(): void;
  /** Bytes handed to the worker and not hashed yet. */
  readonly backlog: number;
  /** Resolves once the backlog is at most `bytes` (or the worker is gone: `digest` then fails). */
  caughtUp(bytes: number): Promise<void>;
}

interface Pending {
  resolve(hex: string): void;
  reject(error: Error): void;
}

/** One running hash's bookkeeping on the main thread. */
interface Job {
  backlog: number;
  waiter: { bytes: number; resolve(): void } | undefined;
}

/** The worker thread and the digests it owes. */
export class HashThread {
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly jobs = new Map<number, Job>();

  private ensureWorker(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    worker.on('message', (message: { id: number; hex?: string; error?: string; hashed?: number }) => {
      if (message.hashed !== undefined) {
        const job = this.jobs.get(message.id);
        if (job === undefined) return;
        job.backlog -= message.hashed;
        if (job.waiter !== undefined && job.backlog <= job.waiter.bytes) {
          const { resolve } = job.waiter;
          job.waiter = undefined;
          resolve();
        }
        return;
      }
      this.jobs.delete(message.id);
      const waiting = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.hex !== undefined) waiting?.resolve(message.hex);
      else waiting?.reject(new Error(`hashing failed: ${message.error}`));
    });
    const lost = (error: Error) => {
      this.worker = undefined;
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
      for (const job of this.jobs.values()) job.waiter?.resolve();
      this.jobs.clear();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`hash worker exited (${code})`)));
    this.worker = worker;
    return worker;
  }

  /** Starts a digest with `algorithm` (`sha256`, `sha512`). */
  start(algorithm: string): RunningHash {
    const worker = this.ensureWorker();
    const id = this.nextId++;
    worker.postMessage({ id, op: 'start', algorithm });
    const job: Job = { backlog: 0, waiter: undefined };
    this.jobs.set(id, job);
    let batch = Buffer.allocUnsafeSlow(BATCH);
    let used = 0;
    const flush = () => {
      if (used === 0) return;
      const data = batch.buffer;
      worker.postMessage({ id, op: 'update', data, length: used }, [data]);
      job.backlog += used;
      batch = Buffer.allocUnsafeSlow(BATCH);
      used = 0;
    };
    return {
      update: (chunk) => {
        let offset = 0;
        while (offset < chunk.length) {
          const take = Math.min(BATCH - used, chunk.length - offset);
          chunk.copy(batch, used, offset, offset + take);
          used += take;
          offset += take;
          if (used === BATCH) flush();
        }
      },
      digest: () => {
        if (this.worker !== worker) return Promise.reject(new Error('hash worker lost'));
        flush();
        return new Promise<string>((resolve, reject) => {
          this.pending.set(id, { resolve, reject });
          worker.postMessage({ id, op: 'digest' });
        });
      },
      abort: () => {
        this.jobs.delete(id);
        job.waiter?.resolve();
        worker.postMessage({ id, op: 'abort' });
      },
      get backlog() {
        return job.backlog;
      },
      caughtUp: (bytes) =>
        job.backlog <= bytes || this.worker !== worker
          ? Promise.resolve()
          : new Promise<void>((resolve) => (job.waiter = { bytes, resolve })),
    };
  }

  /** Stops the worker (tests, shutdown); digests still owed are rejected. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}
