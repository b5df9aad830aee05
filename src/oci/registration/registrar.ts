import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { hostname } from 'node:os';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../shared/logger.js';
import type { Content } from '../domain/content.js';
import type { StorageDriver } from '../storage/driver.js';
import { CatalogClient } from './catalog-client.js';
import type { RegistrationConfig } from './config.js';
import type { ContentEvent } from './content-events.js';
import { describeManifest } from './describe-manifest.js';
import { EventQueue, type SendOutcome } from './event-queue.js';

/** Where the entry's id lives in storage: shared by every replica on the same root or bucket. */
export const REGISTRY_ID_PATH = 'registration/registry-id';

export interface RegistrarDeps {
  readonly config: RegistrationConfig;
  readonly driver: StorageDriver;
  /** Filesystem storage root, for used/free bytes (undefined on S3: reported as null). */
  readonly storageRoot: string | undefined;
  readonly logger: Logger;
  readonly metrics: Registry;
  /** Names this process among the registry's replicas (`<host>:<port>` by default). */
  readonly instanceId: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BATCH = 100;
/** A write racing ours on an empty root (two replicas starting at once) lands within this. */
const ID_SETTLE_MS = 250;

/**
 * Self-registration of the bundled registry (DESIGN.md section 12): upserts its catalog entry
 * (`PUT /container_registry/<id>/registration`), then heartbeats every interval (jittered), and
 * forwards push/delete events through a bounded queue. Nothing here can stop the registry from
 * serving: every failure is logged and retried with capped backoff.
 */
export class Registrar {
  private readonly client: CatalogClient;
  private readonly queue: EventQueue<ContentEvent>;
  private readonly startedAt = new Date().toISOString();
  private readonly version = packageVersion();
  private content: Content | undefined;
  private registryId: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private readonly heartbeats: Counter<'result'>;

  constructor(private readonly deps: RegistrarDeps) {
    this.client = new CatalogClient(deps.config.catalogUrl, deps.config.token);
    const dropped = new Counter({
      name: 'registry_catalog_events_dropped_total',
      help: 'Push/delete events not delivered to the catalog, by why (queue full, refused)',
      labelNames: ['reason'] as const,
      registers: [deps.metrics],
    });
    this.heartbeats = new Counter({
      name: 'registry_catalog_heartbeats_total',
      help: 'Heartbeats sent to the catalog, by result',
      labelNames: ['result'] as const,
      registers: [deps.metrics],
    });
    this.queue = new EventQueue<ContentEvent>({
      capacity: deps.config.eventQueueSize,
      batchSize: BATCH,
      send: (batch) => this.sendEvents(batch),
      logger: deps.logger,
      onDrop: (count, reason) => {
        dropped.inc({ reason }, count);
        if (reason === 'refused') deps.logger.warn({ count }, 'catalog refused events; dropped');
      },
    });
    const queue = this.queue;
    new Gauge({
      name: 'registry_catalog_events_queued',
      help: 'Push/delete events waiting for the catalog',
      registers: [deps.metrics],
      collect(this: Gauge) {
        this.set(queue.length);
      },
    });
  }

  /** The entry's id once known (tests and logs). */
  get id(): string | undefined {
    return this.registryId;
  }

  /** Queues an event; never waits (see EventQueue). */
  enqueue(event: ContentEvent): void {
    this.queue.push(event);
  }

  /** Starts registering in the background with the registry's content (for counts and manifests). */
  start(content: Content): void {
    this.content = content;
    this.running = this.registerLoop();
  }

  /** SIGTERM: one `draining` heartbeat (if registered), a short flush of queued events, then stop. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.registryId !== undefined) {
      await this.heartbeat('draining').then(
        (status) => this.deps.logger.info({ registryId: this.registryId, status }, 'draining heartbeat sent'),
        (error: unknown) => this.deps.logger.warn({ err: error }, 'draining heartbeat not delivered'),
      );
    }
    await this.queue.stop(1_000);
  }

  private async registerLoop(): Promise<void> {
    let backoffMs = 500;
    while (!this.stopped) {
      try {
        const id = this.registryId ?? (await this.resolveId());
        this.registryId = id;
        const answer = await this.client.call('PUT', `/container_registry/${id}/registration`, {
          container_registry_name: this.deps.config.name,
          container_registry_public_url: this.deps.config.publicUrl,
          container_registry_tags: this.deps.config.tags,
        });
        if (answer.status === 200 || answer.status === 201) {
          this.deps.logger.info(
            { registryId: id, catalog: this.deps.config.catalogUrl, created: answer.status === 201 },
            'registered with the catalog',
          );
          this.queue.resume();
          await this.beatAndSchedule();
          return;
        }
        this.deps.logger.warn(
          { status: answer.status, error: answer.body?.error },
          'catalog refused the registration; retrying',
        );
      } catch (error) {
        this.deps.logger.warn({ err: error }, 'catalog unreachable for registration; retrying');
      }
      await sleep(backoffMs * (0.5 + Math.random() / 2));
      backoffMs = Math.min(backoffMs * 2, 60_000);
    }
  }

  /**
   * The entry's id: kept in storage, else adopted from an entry with the same public URL (a
   * replica with its own storage), else a new UUID; written once, then re-read so two replicas
   * starting together on an empty root settle on the same one.
   */
  private async resolveId(): Promise<string> {
    const stored = (await this.deps.driver.readFile(REGISTRY_ID_PATH))?.toString('utf8').trim();
    if (stored !== undefined && UUID.test(stored)) return stored;
    const found = await this.client.call('POST', '/container_registries?limit=1', {
      container_registry_public_url: this.deps.config.publicUrl,
    });
    const existing =
      found.status === 200 && Array.isArray(found.body?.data)
        ? (found.body.data as Array<{ container_registry_id?: unknown }>)[0]?.container_registry_id
        : undefined;
    const candidate = typeof existing === 'string' && UUID.test(existing) ? existing : randomUUID();
    await this.deps.driver.writeFile(REGISTRY_ID_PATH, candidate);
    await sleep(ID_SETTLE_MS);
    const settled = (await this.deps.driver.readFile(REGISTRY_ID_PATH))?.toString('utf8').trim();
    return settled !== undefined && UUID.test(settled) ? settled : candidate;
  }

  private async beatAndSchedule(): Promise<void> {
    if (this.stopped) return;
    try {
      const status = await this.heartbeat('live');
      // The entry was deleted by hand: register again (a restart would).
      if (status === 404) {
        this.running = this.registerLoop();
        return;
      }
    } catch (error) {
      this.heartbeats.inc({ result: 'failed' });
      this.deps.logger.warn({ err: error }, 'heartbeat not delivered');
    }
    if (this.stopped) return;
    const jitter = 1 - Math.random() * 0.1;
    this.timer = setTimeout(
      () => void this.beatAndSchedule(),
      this.deps.config.heartbeatSeconds * 1000 * jitter,
    );
    this.timer.unref();
  }

  private async heartbeat(status: 'live' | 'draining'): Promise<number> {
    const answer = await this.client.call('POST', `/container_registry/${this.registryId!}/heartbeat`, {
      instance_id: this.deps.instanceId,
      status,
      version: this.version,
      interval_s: this.deps.config.heartbeatSeconds,
      started_at: this.startedAt,
      storage: await this.storage(),
      repositories: await this.repositoryCount(),
    });
    this.heartbeats.inc({ result: answer.status === 200 ? 'ok' : 'refused' });
    if (answer.status !== 200)
      this.deps.logger.warn({ status: answer.status, error: answer.body?.error }, 'heartbeat refused');
    return answer.status;
  }

  private async sendEvents(batch: readonly ContentEvent[]): Promise<SendOutcome> {
    if (this.registryId === undefined || this.content === undefined) return 'retry';
    const events = [];
    for (const event of batch) {
      if (event.action === 'delete') {
        events.push({
          action: 'delete',
          repository: event.repository,
          ...(event.tag === null ? {} : { tag: event.tag }),
          ...(event.digest === undefined ? {} : { digest: event.digest }),
          timestamp: event.timestamp,
        });
        continue;
      }
      const facts = await describeManifest(this.content, this.deps.driver, event.repository, event.digest!);
      if (facts === undefined) continue; // deleted since: its delete event follows
      events.push({ ...event, digest: event.digest!, ...facts });
    }
    if (events.length === 0) return 'sent';
    const answer = await this.client.call('POST', `/container_registry/${this.registryId}/events`, {
      events,
    });
    if (answer.status === 200) return 'sent';
    // Not registered yet (409), rate limited, or the catalog failing: try again later. Any other
    // refusal will not change by retrying: drop the batch (the crawler catches up).
    if (answer.status === 409 || answer.status === 429 || answer.status >= 500) return 'retry';
    this.deps.logger.warn({ status: answer.status, error: answer.body?.error }, 'catalog refused events');
    return 'drop';
  }

  private async storage(): Promise<{ used_bytes: number | null; free_bytes: number | null }> {
    if (this.deps.storageRoot === undefined) return { used_bytes: null, free_bytes: null };
    try {
      const stats = await fs.statfs(this.deps.storageRoot);
      return {
        used_bytes: (stats.blocks - stats.bfree) * stats.bsize,
        free_bytes: stats.bavail * stats.bsize,
      };
    } catch {
      return { used_bytes: null, free_bytes: null };
    }
  }

  private async repositoryCount(): Promise<number | null> {
    try {
      return (await this.content!.repositories()).length;
    } catch {
      return null;
    }
  }
}

/** `<host>:<port>`, reduced to the characters an instance id may hold. */
export function defaultInstanceId(port: number): string {
  return `${hostname()}:${port}`.replace(/[^A-Za-z0-9._:-]/g, '-').replace(/^[^A-Za-z0-9]+/, 'i');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** The version in package.json (three levels above src/oci/registration/ and dist/oci/registration/). */
function packageVersion(): string {
  try {
    return (
      JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
        version: string;
      }
    ).version;
  } catch {
    return 'unknown';
  }
}
