import type { Filter } from '../model.js';
import { DuplicateIdError, type Collection, type DocumentDatabase } from './collection.js';

/**
 * The outbox of catalog events and the webhook subscriptions that read it, as a typed
 * repository on five generic collections (collection.ts), so both backends share it:
 *
 *     events               one row per event (CloudEvents JSON), keyed by its sortable id: SSE reads it
 *     webhooks             the subscriptions (secret sealed)
 *     webhook_deliveries   one row per (event, subscription): the outbox the delivery job drains
 *     webhook_leases       which replica delivers a subscription's queue now (compare-and-swap)
 *     health_announcements the last health status announced per registry (hysteresis)
 *     event_intents        a registry change's event written before the change (domain/registry-outbox.ts)
 *
 * Event ids sort by creation time (`seqOf`), so "every event after X" is an indexed range.
 */

/** A CloudEvents 1.0 event in its JSON format. */
export interface CloudEvent {
  readonly specversion: '1.0';
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly time: string;
  readonly subject?: string;
  readonly datacontenttype: 'application/json';
  readonly data: Record<string, unknown>;
}

export interface StoredEvent {
  readonly event_id: string;
  readonly type: string;
  /** '' for events about no registry. */
  readonly registry_id: string;
  readonly event: CloudEvent;
  /** `registry.*` events: the registry version the change produced (a delete: the deleted one + 1). */
  readonly version?: number;
  /** `registry.*` events: the digest of the document the change replaced (registry-outbox.ts). */
  readonly base?: string;
}

/** A registry change's event before the change is known to have committed (registry-outbox.ts). */
export interface StoredIntent {
  /** `<registry id>@<version>`: one writer at a time may make a version. */
  readonly intent_id: string;
  readonly registry_id: string;
  readonly version: number;
  /** The digest of the document the change writes ('-' for a delete). */
  readonly digest: string;
  /** The digest of the document it replaces ('-' for a create). */
  readonly base: string;
  /** Epoch ms. */
  readonly created_at: number;
  readonly event: StoredEvent;
  readonly deliveries: readonly StoredDelivery[];
}

export interface StoredWebhook {
  readonly webhook_id: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly filter: Record<string, unknown>;
  /** Sealed with the credentials cipher (CredentialCipher), bound to the webhook id. */
  readonly secret: string;
  readonly created_at: string;
  readonly updated_at: string;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface DeliveryAttempt {
  readonly at: string;
  readonly status_code: number | null;
  readonly error: string | null;
  readonly duration_ms: number;
}

export interface StoredDelivery {
  /** `<webhook id>:<event id>`: one per pair, so fanning out twice inserts nothing new. */
  readonly delivery_id: string;
  readonly webhook_id: string;
  readonly event_id: string;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  /** Epoch ms of the next attempt of a pending delivery. */
  readonly next_attempt_at: number;
  /** Epoch ms the retry window (24 h by default) counts from; reset by a redelivery. */
  readonly window_start: number;
  readonly created_at: string;
  readonly delivered_at: string | null;
  readonly last_attempt: DeliveryAttempt | null;
  readonly event: CloudEvent;
}

interface LeaseDocument {
  readonly webhook_id: string;
  readonly owner: string;
  readonly until: number;
}

interface AnnouncementDocument {
  readonly registry_id: string;
  readonly status: string;
  readonly announced_at: string;
}

export class EventStore {
  private constructor(
    private readonly events: Collection<StoredEvent>,
    private readonly webhooks: Collection<StoredWebhook>,
    private readonly deliveries: Collection<StoredDelivery>,
    private readonly leases: Collection<LeaseDocument>,
    private readonly announcements: Collection<AnnouncementDocument>,
    private readonly intents: Collection<StoredIntent>,
  ) {}

  /** Opens `<prefix>events`, `<prefix>webhooks`, `<prefix>webhook_deliveries`, `<prefix>webhook_leases`, `<prefix>health_announcements`, `<prefix>event_intents`. */
  static async open(database: DocumentDatabase, prefix: string): Promise<EventStore> {
    return new EventStore(
      await database.collection<StoredEvent>(`${prefix}events`, {
        idField: 'event_id',
        indexes: [
          { field: 'type', kind: 'column', column: 'type' },
          { field: 'registry_id', kind: 'column', column: 'registry_id' },
        ],
      }),
      await database.collection<StoredWebhook>(`${prefix}webhooks`, { idField: 'webhook_id', indexes: [] }),
      await database.collection<StoredDelivery>(`${prefix}webhook_deliveries`, {
        idField: 'delivery_id',
        indexes: [
          { field: 'webhook_id', kind: 'column', column: 'webhook_id' },
          { field: 'status', kind: 'column', column: 'status' },
          { field: 'event_id', kind: 'column', column: 'event_id' },
        ],
      }),
      await database.collection<LeaseDocument>(`${prefix}webhook_leases`, {
        idField: 'webhook_id',
        indexes: [],
      }),
      await database.collection<AnnouncementDocument>(`${prefix}health_announcements`, {
        idField: 'registry_id',
        indexes: [],
      }),
      await database.collection<StoredIntent>(`${prefix}event_intents`, {
        idField: 'intent_id',
        indexes: [],
      }),
    );
  }

  /** Writes events and their deliveries; ids already present are left as they are (a retried publish). */
  async append(events: readonly StoredEvent[], deliveries: readonly StoredDelivery[]): Promise<void> {
    // Deliveries first: an event row without its deliveries would be seen by SSE yet never be delivered.
    if (deliveries.length > 0) await this.deliveries.createMany(deliveries);
    if (events.length > 0) await this.events.createMany(events);
  }

  // Intents (registry-outbox.ts).

  /** Inserts an intent; false when one with its id (registry and version) exists. */
  async createIntent(intent: StoredIntent): Promise<boolean> {
    try {
      await this.intents.create(intent);
      return true;
    } catch (error) {
      if (error instanceof DuplicateIdError) return false;
      throw error;
    }
  }

  async getIntent(id: string): Promise<StoredIntent | undefined> {
    return (await this.intents.get(id))?.document;
  }

  async dropIntent(id: string): Promise<void> {
    await this.intents.delete(id);
  }

  /** Appends the intent's event and deliveries (idempotent), then removes the intent. */
  async appendIntent(intent: StoredIntent): Promise<void> {
    await this.append([intent.event], intent.deliveries);
    await this.intents.delete(intent.intent_id);
  }

  /** Intents created before `before` (epoch ms); the table holds only the changes in flight. */
  async intentsBefore(before: number): Promise<StoredIntent[]> {
    const all = await this.intents.find({}, { sort: [], skip: 0, limit: 100_000 });
    return all.filter((intent) => intent.created_at < before);
  }

  /**
   * The base digest recorded by the change that made `version` of registry `registryId` (its
   * intent, or its event once appended; the newest, should the id have been re-created).
   */
  async transitionAt(registryId: string, version: number): Promise<string | undefined> {
    const intent = await this.getIntent(`${registryId}@${version}`);
    if (intent) return intent.base;
    const [event] = await this.events.find(
      { registry_id: registryId, version },
      { sort: [['event_id', -1]], skip: 0, limit: 1 },
    );
    return event?.base;
  }

  /** Events with an id after `afterId` (all when undefined), oldest first. */
  async eventsAfter(afterId: string | undefined, filter: Filter, limit: number): Promise<StoredEvent[]> {
    const range = afterId === undefined ? {} : { event_id: { $gt: afterId } };
    const combined = Object.keys(filter).length === 0 ? range : { $and: [range, filter] };
    return this.events.find(combined, { sort: [['event_id', 1]], skip: 0, limit });
  }

  async getEvent(id: string): Promise<StoredEvent | undefined> {
    return (await this.events.get(id))?.document;
  }

  // Webhooks.

  async createWebhook(webhook: StoredWebhook): Promise<void> {
    await this.webhooks.create(webhook);
  }

  async getWebhook(id: string): Promise<{ webhook: StoredWebhook; version: number } | undefined> {
    const stored = await this.webhooks.get(id);
    return stored && { webhook: stored.document, version: stored.version };
  }

  async replaceWebhook(
    webhook: StoredWebhook,
    version: number,
  ): Promise<'replaced' | 'conflict' | 'missing'> {
    return (await this.webhooks.replaceIfVersion(webhook, version)).status;
  }

  async deleteWebhook(id: string): Promise<boolean> {
    const deleted = await this.webhooks.delete(id);
    if (deleted) {
      await this.deliveries.deleteMany({ webhook_id: id });
      await this.leases.delete(id);
    }
    return deleted;
  }

  async listWebhooks(skip = 0, limit = 10_000): Promise<StoredWebhook[]> {
    return this.webhooks.find({}, { sort: [['webhook_id', 1]], skip, limit });
  }

  async countWebhooks(): Promise<number> {
    return this.webhooks.count({});
  }

  // Deliveries.

  /** The oldest pending deliveries of a subscription (the head of its queue first), at most `limit`. */
  async pendingOf(webhookId: string, limit: number): Promise<StoredDelivery[]> {
    return this.deliveries.find(
      { webhook_id: webhookId, status: 'pending' },
      { sort: [['event_id', 1]], skip: 0, limit },
    );
  }

  async getDelivery(id: string): Promise<{ delivery: StoredDelivery; version: number } | undefined> {
    const stored = await this.deliveries.get(id);
    return stored && { delivery: stored.document, version: stored.version };
  }

  /** Compare-and-swap of one delivery row; false when someone else changed it first. */
  async replaceDelivery(delivery: StoredDelivery, version: number): Promise<boolean> {
    return (await this.deliveries.replaceIfVersion(delivery, version)).status === 'replaced';
  }

  /** Compare-and-swap of many delivery rows in one batch (the delivery job's outcomes); rows moved on are left. */
  async replaceDeliveries(
    rows: ReadonlyArray<{ readonly document: StoredDelivery; readonly expectedVersion: number }>,
  ): Promise<void> {
    await this.deliveries.replaceManyIfVersion(
      rows.map(({ document, expectedVersion }) => ({ document, version: expectedVersion })),
    );
  }

  /** A subscription's deliveries, newest first, optionally of one status. */
  async deliveriesOf(
    webhookId: string,
    options: { status?: DeliveryStatus; skip: number; limit: number },
  ): Promise<{ items: StoredDelivery[]; total: number }> {
    const filter = { webhook_id: webhookId, ...(options.status ? { status: options.status } : {}) };
    const [items, total] = await Promise.all([
      this.deliveries.find(filter, { sort: [['event_id', -1]], skip: options.skip, limit: options.limit }),
      this.deliveries.count(filter),
    ]);
    return { items, total };
  }

  /** Deletes delivered and failed rows created before `beforeId` (an event id); pending ones stay. */
  async pruneDeliveries(beforeId: string): Promise<void> {
    await this.deliveries.deleteMany({
      status: { $in: ['delivered', 'failed'] },
      event_id: { $lt: beforeId },
    });
  }

  /** Deletes events with an id before `beforeId`. */
  async pruneEvents(beforeId: string): Promise<void> {
    await this.events.deleteMany({ event_id: { $lt: beforeId } });
  }

  // Leases.

  /**
   * Takes or renews the lease on a subscription's queue until `until` (epoch ms): exactly one
   * replica holds it at a time (insert on a unique key, or compare-and-swap of an expired one).
   */
  async lease(webhookId: string, owner: string, now: number, until: number): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const current = await this.leases.get(webhookId);
      if (!current) {
        try {
          await this.leases.create({ webhook_id: webhookId, owner, until });
          return true;
        } catch (error) {
          if (error instanceof DuplicateIdError) continue;
          throw error;
        }
      }
      if (current.document.owner !== owner && current.document.until > now) return false;
      const result = await this.leases.replaceIfVersion(
        { webhook_id: webhookId, owner, until },
        current.version,
      );
      if (result.status === 'replaced') return true;
    }
    return false;
  }

  /** Gives a lease back (only when `owner` still holds it). */
  async release(webhookId: string, owner: string): Promise<void> {
    const current = await this.leases.get(webhookId);
    if (!current || current.document.owner !== owner) return;
    await this.leases.replaceIfVersion({ webhook_id: webhookId, owner, until: 0 }, current.version);
  }

  // Health announcements.

  async announcement(registryId: string): Promise<{ status: string; version: number } | undefined> {
    const stored = await this.announcements.get(registryId);
    return stored && { status: stored.document.status, version: stored.version };
  }

  /**
   * Records `status` as announced if the announcement is still at `version` (0: none yet).
   * False when another replica announced first: then it is that replica's event to publish.
   */
  async announce(registryId: string, status: string, version: number, at: string): Promise<boolean> {
    const document = { registry_id: registryId, status, announced_at: at };
    if (version === 0) {
      try {
        await this.announcements.create(document);
        return true;
      } catch (error) {
        if (error instanceof DuplicateIdError) return false;
        throw error;
      }
    }
    return (await this.announcements.replaceIfVersion(document, version)).status === 'replaced';
  }

  async forgetAnnouncement(registryId: string): Promise<void> {
    await this.announcements.delete(registryId);
  }
}
