import pLimit from 'p-limit';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import { crawlConfigOf, type ImageService } from '../domain/images.js';
import type { HealthStore } from '../store/health-store.js';
import type { ImageStore } from '../store/image-store.js';
import type { RegistryStore } from '../store/registry-store.js';
import type { CrawlConfig } from './crawl-config.js';
import { claimRegistryPages, PeriodicJob } from './periodic-job.js';

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

/** How often the job looks for registries due (a registry's interval may be shorter than the default). */
const TICK_MS = 60_000;

/**
 * Crawls each registry once per interval, cluster-wide, beside the health monitor and with the
 * same slot claims: a registry's slot is its interval's start (ms), claimed by an insert on a
 * unique key in the store, so exactly one replica crawls it per slot. Only registries whose last
 * probe was healthy and whose `crawl.enabled` is not false are crawled.
 */
export class CrawlerJob extends PeriodicJob {
  constructor(private readonly deps: CrawlerJobDeps) {
    super(deps.clock);
  }

  /** One pass: claims every due, healthy registry and crawls the ones this replica won. */
  async sweep(): Promise<{ claimed: number; due: number }> {
    const { registries, healthStore, imageStore, config, owner } = this.deps;
    const statuses = await healthStore.lastStatuses();
    const now = this.clock.now();
    let due = 0;
    const won = await claimRegistryPages(
      registries,
      () => this.halted,
      async (page) => {
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
        return candidates.filter(({ document }) => claimed.has(document.container_registry_id));
      },
    );
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

  protected async pass(): Promise<number> {
    try {
      const { claimed, due } = await this.sweep();
      this.deps.logger.debug({ claimed, due }, 'crawl sweep done');
    } catch (error) {
      this.deps.logger.error({ err: error }, 'crawl sweep failed');
    }
    return Math.min(TICK_MS, this.deps.config.intervalMs);
  }
}
