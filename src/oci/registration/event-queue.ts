import type { Logger } from '../../shared/logger.js';

/** What sending a batch can end in: `retry` keeps it, `drop` discards it (the catalog refused it for good). */
export type SendOutcome = 'sent' | 'retry' | 'drop';

export interface EventQueueOptions<T> {
  /** Events held at most; beyond, the oldest is dropped (the catalog's crawler catches up). */
  readonly capacity: number;
  readonly batchSize: number;
  readonly send: (batch: readonly T[]) => Promise<SendOutcome>;
  readonly logger: Logger;
  /** Counts events dropped because the queue was full or the catalog refused them. */
  readonly onDrop?: (count: number, why: 'full' | 'refused') => void;
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

/**
 * A bounded in-memory queue drained by one sender in batches, in order. `push` never waits and
 * never fails, so a push to the registry costs the same whether the catalog is up or down; a
 * failed batch is retried with capped exponential backoff (with jitter), and while the catalog
 * is away the oldest events give way to new ones. Not durable: a restart loses what is queued,
 * which the periodic crawl repairs.
 */
export class EventQueue<T> {
  private readonly items: T[] = [];
  private draining: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private paused = true;
  private stopped = false;
  private backoffMs: number;
  dropped = 0;

  constructor(private readonly options: EventQueueOptions<T>) {
    this.backoffMs = options.initialBackoffMs ?? 200;
  }

  get length(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.stopped) return;
    this.items.push(item);
    if (this.items.length > this.options.capacity) {
      this.items.shift();
      this.drop(1, 'full');
    }
    this.kick();
  }

  /** Starts sending (events pushed before are kept until then, e.g. while registering). */
  resume(): void {
    this.paused = false;
    this.kick();
  }

  /** Stops sending after trying, for at most `flushMs`, to send what is queued. */
  async stop(flushMs: number): Promise<void> {
    const flushed = this.draining ?? Promise.resolve();
    await Promise.race([flushed, new Promise((resolve) => setTimeout(resolve, flushMs).unref())]);
    this.stopped = true;
    this.wake?.();
  }

  private kick(): void {
    this.wake?.();
    if (this.paused || this.draining !== undefined || this.items.length === 0) return;
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      if (!this.stopped && this.items.length > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (!this.stopped && this.items.length > 0) {
      const batch = this.items.slice(0, this.options.batchSize);
      let outcome: SendOutcome;
      try {
        outcome = await this.options.send(batch);
      } catch (error) {
        this.options.logger.debug({ err: error }, 'event batch failed');
        outcome = 'retry';
      }
      if (outcome === 'retry') {
        await this.sleep(this.backoffMs * (0.5 + Math.random() / 2));
        this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 30_000);
        continue;
      }
      this.backoffMs = this.options.initialBackoffMs ?? 200;
      // Events dropped from the front while the batch was in flight shift what is ours.
      const sent = batch.filter((item) => this.items.includes(item));
      this.items.splice(0, sent.length);
      if (outcome === 'drop') this.drop(sent.length, 'refused');
    }
  }

  private drop(count: number, why: 'full' | 'refused'): void {
    this.dropped += count;
    this.options.onDrop?.(count, why);
  }

  /** Waits `ms`, or less when stopped. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        if (this.stopped) done();
      };
    });
  }
}
