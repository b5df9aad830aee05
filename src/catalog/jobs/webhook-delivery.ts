import pLimit from 'p-limit';
import type { Logger } from '../../shared/logger.js';
import type { EventPublisher } from '../events/event-publisher.js';
import { idAt } from '../events/event-types.js';
import { sign } from '../events/webhook-signature.js';
import type { WebhookService } from '../events/webhooks.js';
import type { WebhookPost } from '../health/webhook-post.js';
import type { EventStore, StoredDelivery, StoredWebhook } from '../store/event-store.js';
import type { WebhookConfig } from './webhook-config.js';

export interface WebhookDeliveryDeps {
  readonly store: EventStore;
  readonly webhooks: WebhookService;
  readonly publisher: EventPublisher;
  readonly post: WebhookPost;
  readonly config: Pick<
    WebhookConfig,
    'pollMs' | 'timeoutMs' | 'concurrency' | 'retryInitialMs' | 'retryMaxMs' | 'retryWindowMs' | 'retentionMs'
  >;
  readonly logger: Logger;
  /** Names this replica in its leases. */
  readonly owner: string;
  readonly now?: () => number;
}

const PRUNE_EVERY_MS = 60_000;
const BATCH = 100;
/** Delivered outcomes per store write. */
const RECORD_BATCH = 20;

/**
 * Drains the outbox to the receivers. Each subscription's deliveries form one queue, delivered
 * strictly in event order: only its head is tried, and a head waiting for its retry holds the
 * ones behind it. A replica delivers a queue only while it holds the queue's lease in the store
 * (taken with compare-and-swap, renewed before each attempt, given back when the queue is empty
 * or waiting), so two replicas never send the same event at once; a replica killed mid-attempt
 * leaves its lease to expire and another replica sends that event again with the same
 * `webhook-id` (at least once). Queues are drained concurrently (`concurrency`), each attempt
 * has a deadline, so a slow receiver holds only its own queue.
 */
export class WebhookDeliveryJob {
  private readonly now: () => number;
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly draining = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private passing: Promise<void> | undefined;
  private again = false;
  private stopped = true;
  private unsubscribe: (() => void) | undefined;
  private lastPrune = 0;

  constructor(private readonly deps: WebhookDeliveryDeps) {
    this.now = deps.now ?? Date.now;
    this.limit = pLimit(deps.config.concurrency);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.unsubscribe = this.deps.publisher.onPublished(() => this.wake());
    this.wake();
  }

  /** Stops looking for work and waits for the attempts in flight (each ends by its deadline). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.timer);
    await this.passing;
    await Promise.all(this.draining.values());
  }

  /** Runs a pass soon (a local publish or redelivery). */
  wake(): void {
    if (this.stopped) return;
    if (this.passing) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.passing = this.pass().finally(() => {
      this.passing = undefined;
      if (this.stopped) return;
      if (this.again) {
        this.again = false;
        this.wake();
        return;
      }
      this.timer = setTimeout(() => this.wake(), this.deps.config.pollMs);
      this.timer.unref();
    });
  }

  /** One pass: every subscription not being drained here gets a drain (which leases it first). */
  private async pass(): Promise<void> {
    try {
      const webhooks = await this.deps.store.listWebhooks();
      for (const webhook of webhooks) {
        if (this.stopped) break;
        const id = webhook.webhook_id;
        if (this.draining.has(id)) continue;
        const drain = this.limit(() => this.drain(webhook))
          .catch((error: unknown) =>
            this.deps.logger.warn({ err: error, webhookId: id }, 'webhook drain failed'),
          )
          .finally(() => this.draining.delete(id));
        this.draining.set(id, drain);
      }
      if (this.now() - this.lastPrune > PRUNE_EVERY_MS) {
        this.lastPrune = this.now();
        const before = idAt(this.now() - this.deps.config.retentionMs);
        await this.deps.store.pruneDeliveries(before);
        await this.deps.store.pruneEvents(before);
      }
    } catch (error) {
      this.deps.logger.error({ err: error }, 'webhook delivery pass failed');
    }
  }

  /**
   * Delivers one subscription's due deliveries in order while this replica holds its lease.
   * Delivered outcomes are recorded in batches (`RECORD_BATCH`, one store write each, written
   * while the next deliveries go out): a replica killed before a batch is written sends those
   * events again, with the same `webhook-id` (at least once). A failed attempt is recorded at once.
   */
  private async drain(webhook: StoredWebhook): Promise<void> {
    const { store, owner, config } = this.deps;
    const id = webhook.webhook_id;
    // The queue is read in batches (one query per batch, not per delivery: FerretDB sorts slowly).
    let batch = await store.pendingOf(id, BATCH);
    if (batch.length === 0 || batch[0]!.next_attempt_at > this.now()) return;
    // The lease outlives one attempt by a margin; it is renewed when less than half is left.
    const leaseMs = config.timeoutMs * 2 + 5_000;
    let leasedUntil = this.now() + leaseMs;
    if (!(await store.lease(id, owner, this.now(), leasedUntil))) return;
    const recorder = new OutcomeRecorder(store);
    try {
      // A fresh read of the subscription: its URL or secret may have changed since the pass listed it.
      const current = (await store.getWebhook(id))?.webhook;
      if (!current) return;
      const secret = this.deps.webhooks.openSecret(current);
      while (batch.length > 0) {
        for (const head of batch) {
          if (this.stopped) return;
          if (leasedUntil - this.now() < leaseMs / 2) {
            leasedUntil = this.now() + leaseMs;
            if (!(await store.lease(id, owner, this.now(), leasedUntil))) return;
          }
          // Re-read, one at a time (a whole batch at once floods FerretDB and starves PUTs): a replica
          // whose lease this one took over may have delivered it, or a redelivery moved it.
          const row = await store.getDelivery(head.delivery_id);
          if (!row || row.delivery.status !== 'pending') continue;
          if (row.delivery.next_attempt_at > this.now()) return;
          const next = await this.attempt(current, secret, row.delivery);
          if (next.status === 'delivered') {
            recorder.add(next, row.version);
            continue;
          }
          // A failed head holds the queue: what follows it waits for its retry (per-subscription order).
          await recorder.flush();
          await store.replaceDelivery(next, row.version);
          if (next.status === 'pending') return;
        }
        await recorder.flush();
        batch = await store.pendingOf(id, BATCH);
      }
    } finally {
      await recorder
        .flush()
        .catch((error: unknown) =>
          this.deps.logger.warn({ err: error, webhookId: id }, 'recording deliveries failed'),
        );
      await store.release(id, owner).catch(() => undefined);
    }
  }

  /** One attempt; returns the delivery with its outcome (delivered, retry later, or failed), not yet recorded. */
  private async attempt(
    webhook: StoredWebhook,
    secret: string,
    delivery: StoredDelivery,
  ): Promise<StoredDelivery> {
    const { config } = this.deps;
    const body = JSON.stringify(delivery.event);
    const started = this.now();
    const timestamp = Math.floor(started / 1000);
    const outcome = await this.deps.post(
      webhook.url,
      {
        'content-type': 'application/cloudevents+json',
        'user-agent': 'aios-registry-catalog-webhooks/1',
        'webhook-id': delivery.event.id,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': sign(secret, delivery.event.id, timestamp, body),
      },
      body,
      config.timeoutMs,
    );
    const finished = this.now();
    const ok = outcome.status !== undefined && outcome.status >= 200 && outcome.status < 300;
    const attempts = delivery.attempts + 1;
    const expired = finished - delivery.window_start >= config.retryWindowMs;
    const next: StoredDelivery = {
      ...delivery,
      attempts,
      status: ok ? 'delivered' : expired ? 'failed' : 'pending',
      delivered_at: ok ? new Date(finished).toISOString() : null,
      next_attempt_at: ok || expired ? delivery.next_attempt_at : finished + backoff(attempts, config),
      last_attempt: {
        at: new Date(started).toISOString(),
        status_code: outcome.status ?? null,
        error: outcome.error ?? (ok ? null : `answered ${outcome.status}`),
        duration_ms: finished - started,
      },
    };
    if (!ok)
      this.deps.logger.info(
        {
          webhookId: webhook.webhook_id,
          eventId: delivery.event_id,
          attempts,
          error: next.last_attempt!.error,
          failed: expired,
        },
        'webhook delivery failed',
      );
    return next;
  }
}

/** Delivered outcomes written `RECORD_BATCH` at a time, each batch while the next deliveries go out. */
class OutcomeRecorder {
  private pending: Array<{ document: StoredDelivery; expectedVersion: number }> = [];
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly store: EventStore) {}

  add(delivery: StoredDelivery, version: number): void {
    this.pending.push({ document: delivery, expectedVersion: version });
    // Not awaited: a failure surfaces at the next flush (the chain stays rejected).
    if (this.pending.length >= RECORD_BATCH) this.start().catch(() => undefined);
  }

  /** Resolves once everything added is written. */
  async flush(): Promise<void> {
    await this.start();
  }

  private start(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    // One batch in flight at a time, in order; a failure surfaces at the next flush.
    this.writing = this.writing.then(() =>
      batch.length > 0 ? this.store.replaceDeliveries(batch) : undefined,
    );
    return this.writing;
  }
}

/** Capped exponential backoff with full jitter in its upper half: [d/2, d) for d = initial * 2^(n-1), d <= max. */
export function backoff(
  attempts: number,
  config: Pick<WebhookConfig, 'retryInitialMs' | 'retryMaxMs'>,
): number {
  const ceiling = Math.min(config.retryMaxMs, config.retryInitialMs * 2 ** Math.min(attempts - 1, 40));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}
