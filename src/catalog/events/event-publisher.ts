import type { Logger } from '../../shared/logger.js';
import { compileFilter } from '../language/mongo-semantics.js';
import type { ContainerRegistry } from '../model.js';
import type {
  CloudEvent,
  EventStore,
  StoredDelivery,
  StoredEvent,
  StoredWebhook,
} from '../store/event-store.js';
import { toPublic } from '../domain/credentials.js';
import { matchesAny, newEventId, type EventType } from './event-types.js';

/** One event to publish: its type, what it is about, and its `data`. */
export interface EventInput {
  readonly type: EventType;
  /** The registry the event is about; subscriptions' filters are matched against its document. */
  readonly registryId: string;
  /** The registry's document when the caller has it (saves a read; required for `registry.deleted`). */
  readonly registry?: ContainerRegistry;
  /** CloudEvents `subject` (the registry id unless given: an image reference for image events). */
  readonly subject?: string;
  readonly data: Record<string, unknown>;
  /** `registry.*`: the version the change made and the digest of what it replaced (registry-outbox.ts). */
  readonly outbox?: { readonly version: number; readonly base: string };
}

export interface EventPublisherDeps {
  readonly store: EventStore;
  /** Reads a registry document (for filters of events that do not carry one). */
  readonly registryOf: (id: string) => Promise<ContainerRegistry | undefined>;
  readonly logger: Logger;
  readonly now?: () => number;
  /** How long the cached list of subscriptions is trusted (other replicas' changes show after it). */
  readonly webhookCacheMs?: number;
}

interface CachedWebhook {
  readonly webhook: StoredWebhook;
  readonly matches: (document: Record<string, unknown>) => boolean;
}

/**
 * Writes events to the outbox: one event row (for `GET /events`) and one pending delivery per
 * matching subscription, before the caller acknowledges the change the events describe (the
 * "outbox row written before the change is acknowledged" form of a transactional outbox: the
 * generic store has no multi-collection transactions). Then it wakes the local readers (the
 * delivery job, SSE); other replicas find the rows when they poll.
 */
export class EventPublisher {
  private readonly now: () => number;
  private readonly listeners = new Set<() => void>();
  private cache: { at: number; webhooks: Promise<CachedWebhook[]> } | undefined;

  constructor(private readonly deps: EventPublisherDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Publishes events (in this order); resolves once they are durable in the outbox. */
  async publish(inputs: readonly EventInput[]): Promise<CloudEvent[]> {
    if (inputs.length === 0) return [];
    const prepared = await this.prepare(inputs);
    await this.deps.store.append(
      prepared.map(({ event }) => event),
      prepared.flatMap(({ deliveries }) => deliveries),
    );
    this.notify();
    return prepared.map(({ event }) => event.event);
  }

  /** The rows `publish` would write: each event with its deliveries (registry-outbox.ts writes them later). */
  async prepare(
    inputs: readonly EventInput[],
  ): Promise<Array<{ event: StoredEvent; deliveries: StoredDelivery[] }>> {
    const webhooks = await this.webhooks();
    const prepared: Array<{ event: StoredEvent; deliveries: StoredDelivery[] }> = [];
    const documents = new Map<string, Record<string, unknown> | undefined>();
    for (const input of inputs) {
      const now = this.now();
      const id = newEventId(now);
      const registry = input.registry ?? (await this.registryOf(input.registryId, documents));
      const event: CloudEvent = {
        specversion: '1.0',
        id,
        source: `/container_registry/${input.registryId}`,
        type: input.type,
        time: new Date(now).toISOString(),
        subject: input.subject ?? input.registryId,
        datacontenttype: 'application/json',
        data: { container_registry_id: input.registryId, ...input.data },
      };
      const deliveries: StoredDelivery[] = [];
      prepared.push({
        event: {
          event_id: id,
          type: input.type,
          registry_id: input.registryId,
          event,
          ...(input.outbox ?? {}),
        },
        deliveries,
      });
      const document = registry && (toPublic(registry) as unknown as Record<string, unknown>);
      for (const { webhook, matches } of webhooks) {
        if (!matchesAny(webhook.events, input.type)) continue;
        // A filter needs a document to match; an event about an unknown registry goes only to unfiltered subscriptions.
        if (Object.keys(webhook.filter).length > 0 && !(document && matches(document))) continue;
        deliveries.push({
          delivery_id: `${webhook.webhook_id}:${id}`,
          webhook_id: webhook.webhook_id,
          event_id: id,
          status: 'pending',
          attempts: 0,
          next_attempt_at: now,
          window_start: now,
          created_at: event.time,
          delivered_at: null,
          last_attempt: null,
          event,
        });
      }
    }
    return prepared;
  }

  /** Calls `listener` after each local publish; returns the function that removes it. */
  onPublished(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Wakes the local readers now (after a publish, or a redelivery). */
  notify(): void {
    for (const listener of this.listeners) listener();
  }

  /** Forgets the cached subscriptions (after a local create, update or delete of one). */
  invalidateWebhooks(): void {
    this.cache = undefined;
  }

  private async webhooks(): Promise<CachedWebhook[]> {
    const now = this.now();
    if (!this.cache || now - this.cache.at > (this.deps.webhookCacheMs ?? 1_000)) {
      const webhooks = this.deps.store
        .listWebhooks()
        .then((list) => list.map((webhook) => ({ webhook, matches: compileFilter(webhook.filter) })));
      this.cache = { at: now, webhooks };
      webhooks.catch(() => (this.cache = undefined));
    }
    return this.cache.webhooks;
  }

  private async registryOf(
    id: string,
    seen: Map<string, Record<string, unknown> | undefined>,
  ): Promise<ContainerRegistry | undefined> {
    if (!seen.has(id)) seen.set(id, (await this.deps.registryOf(id)) as unknown as Record<string, unknown>);
    return seen.get(id) as unknown as ContainerRegistry | undefined;
  }
}
