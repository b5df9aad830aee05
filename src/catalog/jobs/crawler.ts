import pLimit from 'p-limit';
import { SYSTEM_CLOCK, type Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import { crawlConfigOf, type ImageService } from '../domain/images.js';
import type { ContainerRegistry } from '../model.js';
import type { HealthStore } from '../store/health-store.js';
import type { ImageStore } from '../store/image-store.js';
import type { RegistryStore } from '../store/registry-store.js';
import type { CrawlConfig } from './crawl-config.js';

export interface CrawlerJobDeps {
  readonly registries: RegistryStore;
  readonly healthStore: HealthStore;
  readonly imageStore: ImageStore;
  readonly images: ImageService;
  readonly config: CrawlConfig;
  readonly logger: Logger;
  /** Names this replica in its claims. */
  readonly owner: string;
  readonly clock?: Clock;
}

const PAGE = 500;
/** How often the job looks for registries due (a registry's interval may be shorter than the default). */
const TICK_MS = 60_000;

/**
 * Crawls each registry once per interval, cluster-wide, beside the health monitor and with the
 * same slot claims: a registry's slot is its interval's start (ms), claimed by an insert on a
 * unique key in the store, so exactly one replica crawls it per slot. Only registries whose last
 * probe was healthy and whose `crawl.enabled` is not false are crawled.
 */
export class CrawlerJob {
  private cancelTimer: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private started = false;
  private halted = false;
  private readonly clock: Clock;

  constructor(private readonly deps: CrawlerJobDeps) {
    this.clock = deps.clock ?? SYSTEM_CLOCK;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.halted = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.started = false;
    this.halted = true;
    this.cancelTimer?.();
    await this.running;
  }

  /** One pass: claims every due, healthy registry and crawls the ones this replica won. */
  async sweep(): Promise<{ claimed: number; due: number }> {
    const { registries, healthStore, imageStore, config, owner } = this.deps;
    const statuses = await healthStore.lastStatuses();
    const now = this.clock.now();
    const won: Array<{ document: ContainerRegistry; slot: number }> = [];
    let due = 0;
    for (let skip = 0; !this.halted; skip += PAGE) {
      const page = await registries.find({}, { sort: [['container_registry_id', 1]], skip, limit: PAGE });
      const candidates = page.flatMap((document) => {
        const crawl = crawlConfigOf(document);
        if (!crawl.enabled) return [];
        if (statuses.get(document.container_registry_id)?.status !== 'healthy') return [];
        const interval = crawl.intervalMs ?? config.intervalMs;
        return [{ document, slot: Math.floor(now / interval) * interval }];
      });
      due += candidates.length;
      const claimed = await imageStore.claim(
        candidates.map(({ document, slot }) => ({ id: document.container_registry_id, slot })),
        owner,
      );
      won.push(...candidates.filter(({ document }) => claimed.has(document.container_registry_id)));
      if (page.length < PAGE) break;
    }
    const limit = pLimit(config.concurrentRegistries);
    await Promise.all(
      won.map(({ document, slot }) =>
        limit(async () => {
          if (this.halted) return;
          try {
            await this.deps.images.crawl(document);
          } catch (error) {
            this.deps.logger.warn({ registryId: document.container_registry_id, err: error }, 'crawl failed');
          }
          await imageStore.pruneClaims(document.container_registry_id, slot);
        }),
      ),
    );
    return { claimed: won.length, due };
  }

  private schedule(delayMs: number): void {
    this.cancelTimer = this.clock.after(delayMs, () => {
      this.running = this.sweep()
        .then(({ claimed, due }) => this.deps.logger.debug({ claimed, due }, 'crawl sweep done'))
        .catch((error: unknown) => this.deps.logger.error({ err: error }, 'crawl sweep failed'))
        .finally(() => {
          if (this.started) this.schedule(Math.min(TICK_MS, this.deps.config.intervalMs));
        });
    });
  }
}
