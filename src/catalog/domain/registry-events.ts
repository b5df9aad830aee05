import type { ValidateFunction } from 'ajv';
import type { SchemaSet } from '../../shared/schemas.js';
import { toSchemaIssues } from '../../shared/schemas.js';
import type { Principal } from '../access/principal.js';
import { ValidationError } from '../errors.js';
import type { ContainerImage, ImagePlatform } from '../model.js';
import type { ImageStore } from '../store/image-store.js';
import type { HeartbeatService } from './heartbeats.js';
import { pullHost } from './images.js';
import { parseId } from './parameters.js';
import type { RegistryService } from './registries.js';

/** An image event reported by a registry (its push/delete notifications) or found by a crawl. */
export interface ImageEventInput {
  readonly action: 'pushed' | 'deleted' | 'discovered' | 'removed';
  readonly repository: string;
  readonly tag?: string | null;
  readonly digest?: string | null;
  /** More fields for `data` (media type, size, platforms...). */
  readonly details?: Record<string, unknown>;
}

/** A push or delete the bundled registry reports (`schemas/self-registration.schema.json#/$defs/event`). */
export type RegistryEvent =
  | {
      readonly action: 'push';
      readonly repository: string;
      readonly tag?: string | null;
      readonly digest: string;
      readonly media_type: string;
      readonly size: number;
      readonly platforms: ImagePlatform[];
      readonly timestamp: string;
    }
  | {
      readonly action: 'delete';
      readonly repository: string;
      readonly tag?: string | null;
      readonly digest?: string;
      readonly timestamp: string;
    };

/** What applying one batch did (`POST /container_registry/<id>/events`). */
export interface EventsResult {
  applied: number;
  pushed: number;
  deleted: number;
}

export interface RegistryEventServiceDeps {
  readonly images: ImageStore;
  readonly registries: RegistryService;
  readonly heartbeats: HeartbeatService;
  readonly schemas: SchemaSet;
  readonly now?: () => number;
  /** Told what each batch applied, in order (`image.pushed`, `image.deleted` events). */
  readonly onApplied?: (registryId: string, applied: readonly ImageEventInput[]) => Promise<unknown>;
}

const NO_REFERRERS = { signatures: 0, sboms: 0, attestations: 0, other: 0, artifact_types: [] };

/**
 * Applies a self-registered registry's push and delete events to the image index at once, as
 * records with `source: "event"` (no crawl needed). The registry describes what it pushed
 * (digest, media type, size, platforms); referrer counts are left to the next crawl. Only the
 * entry's own registry may post them (the same binding as heartbeats).
 */
export class RegistryEventService {
  private readonly validate: ValidateFunction;
  private readonly now: () => number;

  constructor(private readonly deps: RegistryEventServiceDeps) {
    this.validate = deps.schemas.validator('self-registration.schema.json', '/$defs/events');
    this.now = deps.now ?? Date.now;
  }

  async apply(rawId: string, body: unknown, principal: Principal | undefined): Promise<EventsResult> {
    const id = parseId(rawId);
    if (!this.validate(body))
      throw ValidationError.of(toSchemaIssues(this.validate.errors), 'Invalid registry events');
    const events = (body as { events: RegistryEvent[] }).events;
    events.forEach((event, index) => {
      if (event.action === 'delete' && event.digest === undefined && (event.tag ?? null) === null)
        throw ValidationError.of(
          [{ pointer: `/events/${index}`, message: 'a delete names a digest or a tag' }],
          'Invalid registry events',
        );
    });
    const { document } = await this.deps.registries.get(id);
    await this.deps.heartbeats.registered(id, principal);
    const host = pullHost(document);
    const result: EventsResult = { applied: 0, pushed: 0, deleted: 0 };
    const applied: ImageEventInput[] = [];
    for (const event of events) {
      if (event.action === 'push') {
        const seenAt = new Date(this.now()).toISOString();
        const tag = event.tag ?? null;
        const record: ContainerImage = {
          container_registry_id: id,
          repository: event.repository,
          tag,
          digest: event.digest,
          media_type: event.media_type,
          platforms: event.platforms,
          size: event.size,
          pull_reference:
            tag === null
              ? `${host}/${event.repository}@${event.digest}`
              : `${host}/${event.repository}:${tag}`,
          referrers: NO_REFERRERS,
          first_seen: seenAt,
          last_seen: seenAt,
          source: 'event',
        };
        await this.deps.images.writeSeen([record]);
        result.pushed++;
        applied.push({
          action: 'pushed',
          repository: event.repository,
          tag,
          digest: event.digest,
          details: { media_type: event.media_type, size: event.size, platforms: event.platforms },
        });
      } else {
        const removed = await this.deps.images.removeByEvent(id, event.repository, {
          ...(event.digest === undefined ? {} : { digest: event.digest }),
          ...((event.tag ?? null) === null ? {} : { tag: event.tag! }),
        });
        result.deleted += removed;
        if (removed > 0)
          applied.push({
            action: 'deleted',
            repository: event.repository,
            tag: event.tag ?? null,
            digest: event.digest ?? null,
          });
      }
      result.applied++;
    }
    if (applied.length > 0) await this.deps.onApplied?.(id, applied);
    return result;
  }
}
