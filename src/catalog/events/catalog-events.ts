import type { ContainerImage, ContainerRegistry, HealthReport } from '../model.js';
import type { CloudEvent, EventStore } from '../store/event-store.js';
import type { HealthStore } from '../store/health-store.js';
import type { EventPublisher } from './event-publisher.js';
import type { ImageEventInput } from '../domain/registry-events.js';

/**
 * Where the catalog's changes become events: the registry store is wrapped so every create,
 * replace and delete publishes `registry.*` through an intent (registry-outbox.ts); the health
 * service reports each recorded probe (hysteresis here), the image service what a crawl changed,
 * and the heartbeat and push-event ingest call `heartbeatStale` and `imageEvents`.
 */

/** How many consecutive probes must agree before a health change is announced. */
export const AGREEING_PROBES = 2;

/**
 * `registry.health.changed` with hysteresis: announced only when the last `AGREEING_PROBES`
 * recorded probes agree on a status other than the one announced last, so a registry flapping
 * between healthy and unreachable announces nothing. The announced status is kept in the store
 * with compare-and-swap, so replicas recording probes of one registry announce a change once.
 */
export class HealthAnnouncer {
  constructor(
    private readonly deps: {
      readonly healthStore: HealthStore;
      readonly events: EventStore;
      readonly publisher: EventPublisher;
      readonly now?: () => number;
    },
  ) {}

  /** Called after each recorded probe of `document` (HealthService's `onRecorded`). */
  async recorded(document: ContainerRegistry, report: HealthReport): Promise<void> {
    const id = document.container_registry_id;
    const record = await this.deps.healthStore.get(id);
    const recent = record?.history.slice(0, AGREEING_PROBES) ?? [];
    if (recent.length < AGREEING_PROBES || recent.some((entry) => entry.status !== report.status)) return;
    const announced = await this.deps.events.announcement(id);
    if (announced?.status === report.status) return;
    const at = new Date((this.deps.now ?? Date.now)()).toISOString();
    if (!(await this.deps.events.announce(id, report.status, announced?.version ?? 0, at))) return;
    await this.deps.publisher.publish([
      {
        type: 'registry.health.changed',
        registryId: id,
        registry: document,
        data: { from: announced?.status ?? null, to: report.status, report },
      },
    ]);
  }
}

/**
 * Publishes `image.<action>` events of one registry, in order: the entry point for the push/delete
 * ingest (`POST /container_registry/<id>/events`) and for what a crawl changed.
 */
export async function publishImageEvents(
  publisher: EventPublisher,
  registryId: string,
  images: readonly ImageEventInput[],
): Promise<CloudEvent[]> {
  return publisher.publish(
    images.map((image) => ({
      type: `image.${image.action}`,
      registryId,
      subject: image.tag ? `${image.repository}:${image.tag}` : `${image.repository}@${image.digest ?? ''}`,
      data: {
        ...image.details,
        repository: image.repository,
        tag: image.tag ?? null,
        digest: image.digest ?? null,
      },
    })),
  );
}

/** The crawl's changes as `image.discovered` and `image.removed` (ImageService's `onCrawled`). */
export function crawlEvents(
  publisher: EventPublisher,
): (
  registryId: string,
  discovered: readonly ContainerImage[],
  removed: readonly ContainerImage[],
) => Promise<void> {
  const asInput = (action: 'discovered' | 'removed') => (image: ContainerImage) => ({
    action,
    repository: image.repository,
    tag: image.tag,
    digest: image.digest,
    details: { media_type: image.media_type, size: image.size, pull_reference: image.pull_reference },
  });
  return async (registryId, discovered, removed) => {
    await publishImageEvents(publisher, registryId, [
      ...discovered.map(asInput('discovered')),
      ...removed.map(asInput('removed')),
    ]);
  };
}

/**
 * `registry.heartbeat.stale`: for the heartbeat tracker to call once when a registry's heartbeat
 * goes stale (three missed intervals). `details` lands in `data` (e.g. `last_seen`, `instance_id`).
 */
export async function publishHeartbeatStale(
  publisher: EventPublisher,
  registryId: string,
  details: Record<string, unknown> = {},
): Promise<CloudEvent[]> {
  return publisher.publish([{ type: 'registry.heartbeat.stale', registryId, data: { ...details } }]);
}
