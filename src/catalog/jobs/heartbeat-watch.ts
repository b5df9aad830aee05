import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import type { HeartbeatService, StaleTransition } from '../domain/heartbeats.js';
import type { HeartbeatWatchConfig } from './heartbeat-config.js';
import { PeriodicJob } from './periodic-job.js';

/** Called once per stale transition, cluster-wide (the lead wires `registry.heartbeat.stale` here). */
export type OnStale = (transition: StaleTransition) => void | Promise<void>;

export interface HeartbeatWatchDeps {
  readonly heartbeats: HeartbeatService;
  readonly config: HeartbeatWatchConfig;
  readonly logger: Logger;
  /** Default: nothing beyond the log line. */
  readonly onStale?: OnStale;
  readonly clock?: Clock;
}

/**
 * The stale-heartbeat watch: every interval, finds self-registered registries whose instances
 * all missed three heartbeats and hands each *transition* (live or draining -> stale) to
 * `onStale` once. The health report computes the status when read; this job exists for the
 * transitions. A hook that throws is logged and does not stop the watch.
 */
export class HeartbeatWatch extends PeriodicJob {
  constructor(private readonly deps: HeartbeatWatchDeps) {
    super(deps.clock);
  }

  /** One pass; returns the transitions it announced. */
  async sweep(): Promise<StaleTransition[]> {
    const announced: StaleTransition[] = [];
    for await (const transition of this.deps.heartbeats.staleTransitions()) {
      if (this.halted) break;
      announced.push(transition);
      this.deps.logger.warn(
        {
          registryId: transition.registry.container_registry_id,
          lastSeen: transition.heartbeat.last_seen,
        },
        'registry heartbeat stale',
      );
      try {
        await this.deps.onStale?.(transition);
      } catch (error) {
        this.deps.logger.error({ err: error }, 'stale heartbeat hook failed');
      }
    }
    return announced;
  }

  protected async pass(): Promise<number> {
    try {
      await this.sweep();
    } catch (error) {
      this.deps.logger.error({ err: error }, 'heartbeat watch failed');
    }
    return this.deps.config.intervalMs;
  }
}
