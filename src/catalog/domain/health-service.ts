import { Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../../shared/logger.js';
import { NotFoundError, ValidationError } from '../errors.js';
import type { ProbeTarget } from '../model.js';
import type { HealthReport, HealthStatus } from '../model.js';
import type { HealthStore } from '../store/health-store.js';
import type { HealthRecord } from '../model.js';
import type { ContainerRegistry, HeartbeatView } from '../model.js';
import { probeTargetOf } from './probe-target.js';
import type { RegistryService } from './registries.js';

export const HEALTH_STATUSES: readonly HealthStatus[] = ['healthy', 'unhealthy', 'unreachable', 'refused'];

export interface HealthServiceDeps {
  readonly registries: RegistryService;
  readonly healthStore: HealthStore;
  readonly probe: (target: ProbeTarget) => Promise<HealthReport>;
  readonly historySize: number;
  readonly logger: Logger;
  readonly metrics: Registry;
  /** The heartbeat of a self-registered registry, added to its reports (never changing `status`). */
  readonly heartbeatOf?: (registryId: string) => Promise<HeartbeatView | undefined>;
  /** Told of every recorded probe (the health announcer: `registry.health.changed` with hysteresis). */
  readonly onRecorded?: (document: ContainerRegistry, report: HealthReport) => Promise<void>;
}

/**
 * Health of the listed registries: probes one (on demand or for the monitor), records the result
 * with a bounded history, exposes last statuses, and keeps the `/metrics` series up to date.
 */
export class HealthService {
  private readonly up: Gauge<'registry_id'>;
  private readonly latency: Histogram<'status'>;

  constructor(private readonly deps: HealthServiceDeps) {
    this.up = new Gauge({
      name: 'catalog_registry_up',
      help: '1 when the registry answered its last probe as healthy, else 0',
      labelNames: ['registry_id'],
      registers: [deps.metrics],
    });
    this.latency = new Histogram({
      name: 'catalog_probe_duration_seconds',
      help: 'Latency of /v2/ probes by resulting status',
      labelNames: ['status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [deps.metrics],
    });
  }

  /** Probes a registry now and records the result (`GET /check_container_health/<id>`). */
  async check(rawId: string): Promise<HealthReport> {
    const { document } = await this.deps.registries.get(rawId);
    return this.withHeartbeat(document.container_registry_id, await this.probeAndRecord(document));
  }

  /** `report` with the registry's `heartbeat` member when it registered itself. */
  private async withHeartbeat(
    id: string,
    report: HealthReport,
  ): Promise<HealthReport & { heartbeat?: HeartbeatView }> {
    const heartbeat = await this.deps.heartbeatOf?.(id);
    return heartbeat === undefined ? report : { ...report, heartbeat };
  }

  /** Probes a registry document without recording anything (`POST ?verify=true`). */
  async probeOnly(document: ContainerRegistry): Promise<HealthReport> {
    return this.deps.probe(this.targetOf(document));
  }

  /** Probes one registry document and records the result; logs when its status changes. */
  async probeAndRecord(document: ContainerRegistry): Promise<HealthReport> {
    const id = document.container_registry_id;
    const report = await this.deps.probe(this.targetOf(document));
    const previous = await this.deps.healthStore.record(id, report, this.deps.historySize);
    this.up.set({ registry_id: id }, report.status === 'healthy' ? 1 : 0);
    this.latency.observe({ status: report.status }, report.latency_ms / 1000);
    await this.deps.onRecorded?.(document, report);
    if (previous !== undefined && previous !== report.status) {
      this.deps.logger.info(
        { registryId: id, from: previous, to: report.status, reason: report.detail },
        'registry health changed',
      );
    }
    return report;
  }

  /** The last recorded report (`?cached=true`). */
  async cached(rawId: string): Promise<HealthReport> {
    const record = await this.record(rawId);
    return this.withHeartbeat(record.registryId, record.last);
  }

  /** The last report and the history (`GET /container_registry/<id>/health`). */
  async record(rawId: string): Promise<HealthRecord> {
    const { document } = await this.deps.registries.get(rawId);
    const record = await this.deps.healthStore.get(document.container_registry_id);
    if (!record) {
      const id = document.container_registry_id;
      throw new NotFoundError(id, `No health check of container registry ${id} has been recorded yet`);
    }
    return record;
  }

  /** Last status of every registry that has one. */
  async statuses(): Promise<Map<string, { status: HealthStatus; checkedAt: string }>> {
    return this.deps.healthStore.lastStatuses();
  }

  /** Ids whose last status is one of `statuses` (for `?health=`). */
  async idsWithStatus(statuses: readonly HealthStatus[]): Promise<string[]> {
    const wanted = new Set(statuses);
    return [...(await this.deps.healthStore.lastStatuses())]
      .filter(([, { status }]) => wanted.has(status))
      .map(([id]) => id);
  }

  /** Drops what is known about a deleted registry. */
  async forget(registryId: string): Promise<void> {
    this.up.remove({ registry_id: registryId });
    await this.deps.healthStore.remove(registryId);
  }

  private targetOf(document: ContainerRegistry): ProbeTarget {
    return probeTargetOf(document, this.deps.registries, this.deps.logger);
  }
}

/** Parses `?health=healthy,unhealthy`. */
export function parseHealthStatuses(value: unknown): HealthStatus[] | undefined {
  if (value === undefined || value === '') return undefined;
  const parts = typeof value === 'string' ? value.split(',').map((part) => part.trim()) : [];
  if (parts.length === 0 || !parts.every((part) => (HEALTH_STATUSES as readonly string[]).includes(part))) {
    throw ValidationError.of(
      [{ pointer: '/health', message: `must list statuses among ${HEALTH_STATUSES.join(', ')}` }],
      'Invalid health',
    );
  }
  return parts as HealthStatus[];
}
