import pLimit from 'p-limit';
import type { Clock } from '../../shared/clock.js';
import type { MonitorConfig } from './config.js';
import type { Logger } from '../../shared/logger.js';
import type { HealthService } from '../domain/health-service.js';
import type { HealthStore } from '../store/health-store.js';
import type { RegistryStore } from '../store/registry-store.js';
import type { ContainerRegistry } from '../model.js';
import { claimRegistryPages, PeriodicJob } from './periodic-job.js';

export interface MonitorDeps {
  readonly registries: RegistryStore;
  readonly healthStore: HealthStore;
  readonly health: HealthService;
  readonly config: MonitorConfig;
  readonly logger: Logger;
  /** Names this replica in its claims. */
  readonly owner: string;
  /** Time and timers; the system clock unless a test drives its own. */
  readonly clock?: Clock;
}

/**
 * Probes every registry once per interval, cluster-wide. Time is cut into slots of one interval;
 * at each slot every replica walks the registries and claims each one for the slot in the
 * store (an insert on a unique key): exactly one replica wins each claim and probes it. A replica
 * that dies simply stops claiming, so the others pick its registries up in the next slot.
 * Probes start spread over `jitterMs`, at most `concurrency` at a time; it is all asynchronous
 * I/O, so API requests are never blocked behind it.
 */
export class HealthMonitor extends PeriodicJob {
  constructor(private readonly deps: MonitorDeps) {
    super(deps.clock);
  }

  currentSlot(): number {
    return Math.floor(this.clock.now() / this.deps.config.intervalMs);
  }

  /** One pass over every registry for `slot`: claims, then probes what this replica won. */
  async sweep(slot = this.currentSlot()): Promise<{ claimed: number; seen: number }> {
    const { registries, healthStore, config, owner } = this.deps;
    let seen = 0;
    // Claim first, then probe: every probe of the slot starts as early as the limit allows, so a
    // sweep lasts about one timeout however many registries hang.
    const won = await claimRegistryPages(
      registries,
      () => this.halted,
      async (page) => {
        seen += page.length;
        const claimed = await healthStore.claim(
          page.map((document) => document.container_registry_id),
          slot,
          owner,
        );
        return page.filter((document) => claimed.has(document.container_registry_id));
      },
    );
    const limit = pLimit(config.concurrency);
    // Jitter spreads the starts; a waiting probe does not hold a concurrency slot.
    const probes = won.map(async (document) => {
      if (config.jitterMs > 0)
        await new Promise<void>((resolve) => this.clock.after(Math.random() * config.jitterMs, resolve));
      await limit(() => this.probe(document));
    });
    await Promise.all(probes);
    await healthStore.pruneClaims(slot - 1);
    return { claimed: won.length, seen };
  }

  private async probe(document: ContainerRegistry): Promise<void> {
    if (this.halted) return;
    try {
      await this.deps.health.probeAndRecord(document);
    } catch (error) {
      this.deps.logger.warn(
        { registryId: document.container_registry_id, err: error },
        'health probe failed',
      );
    }
  }

  /** One scheduled sweep; the next one waits for the start of the following slot. */
  protected async pass(): Promise<number> {
    const slot = this.currentSlot();
    try {
      const { claimed, seen } = await this.sweep(slot);
      this.deps.logger.debug({ slot, claimed, seen }, 'health sweep done');
    } catch (error) {
      this.deps.logger.error({ err: error }, 'health sweep failed');
    }
    const nextSlotAt = (slot + 1) * this.deps.config.intervalMs;
    return Math.max(0, nextSlotAt - this.clock.now());
  }
}
