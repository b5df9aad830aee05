import type { Logger } from '../../shared/logger.js';
import type { SchemaSet } from '../../shared/schemas.js';
import type { ContainerImage } from '../model.js';
import type { CloudEvent, EventStore } from '../store/event-store.js';
import type { HealthStore } from '../store/health-store.js';
import type { RegistryStore } from '../store/registry-store.js';
import { crawlEvents, HealthAnnouncer, publishHeartbeatStale, publishImageEvents } from './catalog-events.js';
import type { ImageEventInput } from '../domain/registry-events.js';
import type { CredentialCipher } from '../domain/credential-cipher.js';
import { EventPublisher, type EventInput } from './event-publisher.js';
import { EventStream } from './event-stream.js';
import { RegistryOutbox } from './registry-outbox.js';
import { WebhookService, type DestinationCheck } from './webhooks.js';

/** What the catalog needs for events (app.ts `CatalogDeps.events`). */
export interface EventsDeps {
  readonly store: EventStore;
  /** The probe's SSRF policy applied to a webhook URL (health/webhook-post.ts `destinationProblem`). */
  readonly checkDestination: DestinationCheck;
  /** `GET /events`: store poll period, per-client heartbeat and buffer. */
  readonly stream?: { readonly pollMs: number; readonly heartbeatMs: number; readonly clientBuffer: number };
  readonly now?: () => number;
}

/**
 * The events side of a catalog. `publish`, `heartbeatStale` and `imageEvents` are the publisher
 * API for code outside this module (the heartbeat tracker, `POST /container_registry/<id>/events`).
 */
export interface CatalogEvents {
  readonly publisher: EventPublisher;
  readonly webhooks: WebhookService;
  readonly stream: EventStream;
  /** Absent without health checking. */
  readonly announcer: HealthAnnouncer | undefined;
  /** The registry store that publishes `registry.*` on each write. */
  readonly registryStore: RegistryStore;
  /** Its outbox: `recover` appends the events of changes whose writer died (at start, then periodically). */
  readonly outbox: RegistryOutbox;
  readonly crawled: (
    registryId: string,
    discovered: readonly ContainerImage[],
    removed: readonly ContainerImage[],
  ) => Promise<void>;
  /** Publishes events, durable in the outbox when it resolves. */
  publish(events: readonly EventInput[]): Promise<CloudEvent[]>;
  /** `registry.heartbeat.stale` (call once per registry going stale). */
  heartbeatStale(registryId: string, details?: Record<string, unknown>): Promise<CloudEvent[]>;
  /** `image.pushed` / `image.deleted` (and the crawl's kinds) of one registry, in order. */
  imageEvents(registryId: string, images: readonly ImageEventInput[]): Promise<CloudEvent[]>;
}

export function createCatalogEvents(
  deps: EventsDeps,
  context: {
    readonly store: RegistryStore;
    readonly schemas: SchemaSet;
    readonly cipher: CredentialCipher | undefined;
    readonly logger: Logger;
    /** With health checking: `registry.health.changed` is announced from its records. */
    readonly healthStore: HealthStore | undefined;
  },
): CatalogEvents {
  const publisher = new EventPublisher({
    store: deps.store,
    registryOf: async (id) => (await context.store.get(id))?.document,
    logger: context.logger,
    now: deps.now,
  });
  const stream = new EventStream({
    store: deps.store,
    publisher,
    pollMs: deps.stream?.pollMs ?? 250,
    limits: {
      heartbeatMs: deps.stream?.heartbeatMs ?? 15_000,
      clientBuffer: deps.stream?.clientBuffer ?? 1_000,
    },
    logger: context.logger,
    now: deps.now,
  });
  const outbox = new RegistryOutbox({
    store: context.store,
    events: deps.store,
    publisher,
    logger: context.logger,
    now: deps.now,
  });
  return {
    publisher,
    stream,
    outbox,
    webhooks: new WebhookService({
      store: deps.store,
      schemas: context.schemas,
      publisher,
      cipher: context.cipher,
      checkDestination: deps.checkDestination,
      now: deps.now,
    }),
    announcer:
      context.healthStore &&
      new HealthAnnouncer({ healthStore: context.healthStore, events: deps.store, publisher, now: deps.now }),
    registryStore: outbox.wrap(),
    crawled: crawlEvents(publisher),
    publish: (events) => publisher.publish(events),
    heartbeatStale: (registryId, details) => publishHeartbeatStale(publisher, registryId, details),
    imageEvents: (registryId, images) => publishImageEvents(publisher, registryId, images),
  };
}
