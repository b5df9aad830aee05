import type { ValidateFunction } from 'ajv';
import type { SchemaSet } from '../../shared/schemas.js';
import { toSchemaIssues } from '../../shared/schemas.js';
import type { Principal } from '../access/principal.js';
import {
  CatalogError,
  ConflictError,
  NotFoundError,
  UnprocessableError,
  ValidationError,
} from '../errors.js';
import type { ContainerRegistry, HeartbeatInstance, HeartbeatRecord, HeartbeatView } from '../model.js';
import type { HeartbeatStore } from '../store/heartbeat-store.js';
import { FORGET_AFTER_INTERVALS, heartbeatView, isStaleTransition } from './heartbeat-status.js';
import { parseId } from './parameters.js';
import type { RegistryService } from './registries.js';

/** Answers why a public URL may not be stored (the probe's address policy refused it), or undefined. */
export type UrlVetting = (document: ContainerRegistry) => Promise<string | undefined>;

export interface HeartbeatServiceDeps {
  readonly store: HeartbeatStore;
  readonly registries: RegistryService;
  readonly schemas: SchemaSet;
  /** Probes a registering URL once: `refused` (SSRF policy) stops the registration. */
  readonly vetUrl?: UrlVetting;
  readonly now?: () => number;
}

/** A registry that just turned stale, as the stale watch hands it to its hook. */
export interface StaleTransition {
  readonly registry: ContainerRegistry;
  readonly heartbeat: HeartbeatView;
}

/** Instances kept per entry: replicas are few; a churn of restarted pods must not grow it. */
const MAX_INSTANCES = 64;
const SCHEMA = 'self-registration.schema.json';

/**
 * Self-registration (DESIGN.md section 12): a bundled registry registers its entry, then sends
 * heartbeats; replicas of one registry share the entry as `instances[]`. A token with the
 * `register` role is bound to the entries it registered first (its name is the record's owner):
 * it cannot register over, beat for, or post events to anyone else's entry. `write` and `admin`
 * tokens may act on any entry.
 */
export class HeartbeatService {
  private readonly validateRegistration: ValidateFunction;
  private readonly validateHeartbeat: ValidateFunction;
  private readonly now: () => number;

  constructor(private readonly deps: HeartbeatServiceDeps) {
    this.validateRegistration = deps.schemas.validator(SCHEMA, '/$defs/registration');
    this.validateHeartbeat = deps.schemas.validator(SCHEMA, '/$defs/heartbeat');
    this.now = deps.now ?? Date.now;
  }

  /**
   * `PUT /container_registry/<id>/registration`: creates the entry (same schema as any create)
   * or updates its name, URL, tags and prefix; binds it to the caller's token on first use.
   */
  async register(
    rawId: string,
    body: unknown,
    principal: Principal | undefined,
  ): Promise<{ created: boolean; document: ContainerRegistry }> {
    const id = parseId(rawId);
    if (!this.validateRegistration(body))
      throw ValidationError.of(toSchemaIssues(this.validateRegistration.errors), 'Invalid registration');
    const fields = body as Pick<
      ContainerRegistry,
      'container_registry_name' | 'container_registry_public_url'
    > &
      Partial<Pick<ContainerRegistry, 'container_registry_tags' | 'container_registry_image_prefix'>>;
    const record = await this.deps.store.get(id);
    const existing = await this.deps.registries.get(id).catch((error: unknown) => {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    });
    // A new id may be claimed, and so may an entry registered while access control was off.
    this.authorize(
      id,
      record?.owner === null ? undefined : record,
      principal,
      existing === undefined || record?.owner === null,
    );
    const candidate: ContainerRegistry = {
      container_registry_id: id,
      container_registry_name: fields.container_registry_name,
      container_registry_metadata: existing?.document.container_registry_metadata ?? {},
      container_registry_tags: fields.container_registry_tags ?? [],
      container_registry_public_url: fields.container_registry_public_url,
      container_registry_image_prefix: fields.container_registry_image_prefix ?? '',
      container_registry_config: {},
      container_registry_storage_info: {},
    };
    const refusal = await this.deps.vetUrl?.(candidate);
    if (refusal !== undefined)
      throw new UnprocessableError(
        `Container registry at ${candidate.container_registry_public_url} is not allowed: ${refusal}`,
      );
    let created = false;
    let document: ContainerRegistry;
    if (existing === undefined) {
      try {
        document = (await this.deps.registries.create(candidate)).document;
        created = true;
      } catch (error) {
        // Another replica registered the same id a moment ago: update it like a restart would.
        if (!(error instanceof ConflictError)) throw error;
        document = await this.updateFields(id, candidate);
      }
    } else {
      document = await this.updateFields(id, candidate);
    }
    const at = new Date(this.now()).toISOString();
    await this.deps.store.update(id, (current) =>
      current
        ? current.owner !== null || principal === undefined
          ? undefined
          : { ...current, owner: principal.name }
        : {
            registry_id: id,
            owner: principal?.name ?? null,
            registered_at: at,
            last_seen: null,
            instances: [],
            stale_since: null,
          },
    );
    return { created, document };
  }

  /** `POST /container_registry/<id>/heartbeat`: records one instance's beat; returns the view. */
  async beat(rawId: string, body: unknown, principal: Principal | undefined): Promise<HeartbeatView> {
    const id = parseId(rawId);
    if (!this.validateHeartbeat(body))
      throw ValidationError.of(toSchemaIssues(this.validateHeartbeat.errors), 'Invalid heartbeat');
    await this.deps.registries.get(id); // 404 for an entry that is gone
    const record = await this.registered(id, principal);
    this.authorize(id, record, principal, false);
    const beat = body as Omit<HeartbeatInstance, 'last_seen'>;
    const now = this.now();
    const at = new Date(now).toISOString();
    const { after } = await this.deps.store.update(id, (current) => {
      const base = current ?? record;
      const others = base.instances.filter(
        (instance) =>
          instance.instance_id !== beat.instance_id &&
          now - Date.parse(instance.last_seen) <= FORGET_AFTER_INTERVALS * instance.interval_s * 1000,
      );
      const instances = [{ ...beat, last_seen: at }, ...others].slice(0, MAX_INSTANCES);
      return { ...base, last_seen: at, instances, stale_since: null };
    });
    return heartbeatView(after!, now);
  }

  /** The record of a registered entry, checked against the caller (events use it too). */
  async registered(id: string, principal: Principal | undefined): Promise<HeartbeatRecord> {
    const record = await this.deps.store.get(id);
    if (!record) {
      this.authorize(id, undefined, principal, false);
      throw new ConflictError(
        `Container registry ${id} did not register itself: PUT /container_registry/${id}/registration first`,
      );
    }
    this.authorize(id, record, principal, false);
    return record;
  }

  /** The `heartbeat` member of the entry's health report, when it registered itself. */
  async viewOf(registryId: string): Promise<HeartbeatView | undefined> {
    const record = await this.deps.store.get(registryId);
    return record && heartbeatView(record, this.now());
  }

  /**
   * Finds the entries that turned stale since the last call and marks each as announced (a
   * compare-and-swap, so with several catalog replicas exactly one yields a given transition).
   */
  async *staleTransitions(): AsyncIterable<StaleTransition> {
    const now = this.now();
    for await (const record of this.deps.store.all()) {
      if (!isStaleTransition(record, now)) continue;
      const at = new Date(now).toISOString();
      const { before, after } = await this.deps.store.update(record.registry_id, (current) =>
        current && isStaleTransition(current, now) ? { ...current, stale_since: at } : undefined,
      );
      if (!after || after.stale_since !== at || before?.stale_since === at) continue;
      const registry = await this.deps.registries.get(record.registry_id).catch(() => undefined);
      if (registry) yield { registry: registry.document, heartbeat: heartbeatView(after, now) };
    }
  }

  /** Drops the record of a deleted entry. */
  async forget(registryId: string): Promise<void> {
    await this.deps.store.remove(registryId);
  }

  /**
   * Only `register` tokens are bound: to entries they registered first, or to a new id they
   * are about to claim (`claimable`). Entries made by hand cannot be taken over.
   */
  private authorize(
    id: string,
    record: HeartbeatRecord | undefined,
    principal: Principal | undefined,
    claimable: boolean,
  ): void {
    if (principal === undefined || principal.role !== 'register') return;
    if (record === undefined ? claimable : record.owner === principal.name) return;
    throw new CatalogError(
      'forbidden',
      `The token "${principal.name}" has the register role and container registry ${id} is not the one it registered`,
    );
  }

  private async updateFields(id: string, candidate: ContainerRegistry): Promise<ContainerRegistry> {
    const stored = await this.deps.registries.update(id, {
      $set: {
        container_registry_name: candidate.container_registry_name,
        container_registry_public_url: candidate.container_registry_public_url,
        container_registry_tags: candidate.container_registry_tags,
        container_registry_image_prefix: candidate.container_registry_image_prefix,
      },
    });
    return stored.document;
  }
}
