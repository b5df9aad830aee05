import { SYSTEM_CLOCK, type Clock } from '../../shared/clock.js';
import type { ContainerRegistry } from '../model.js';
import type { RegistryStore } from '../store/registry-store.js';

/**
 * What the background jobs share: the first pass runs at once, each next one after the delay
 * the previous pass returned, on the injected clock (the system clock by default). `stop()`
 * cancels the timer, raises `halted` (work not yet begun is skipped) and waits for the pass in
 * progress. A job extends it with its `pass`.
 */
export abstract class PeriodicJob {
  protected readonly clock: Clock;
  private cancelTimer: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private started = false;
  private stopped = false;

  constructor(clock: Clock | undefined) {
    this.clock = clock ?? SYSTEM_CLOCK;
  }

  /**
   * One pass; resolves with the delay (ms) until the next one. It must not reject: a pass logs
   * its own failures, so a bad pass never stops the schedule.
   */
  protected abstract pass(): Promise<number>;

  /** Set by stop(), cleared by start(): a pass checks it before each unit of work. */
  protected get halted(): boolean {
    return this.stopped;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops scheduling and waits for the pass in progress to finish its work. */
  async stop(): Promise<void> {
    this.started = false;
    this.stopped = true;
    this.cancelTimer?.();
    await this.running;
  }

  /** Resolves when the pass in progress, if any, is done and the next one is scheduled. */
  async idle(): Promise<void> {
    await this.running;
  }

  private schedule(delayMs: number): void {
    this.cancelTimer = this.clock.after(delayMs, () => {
      this.running = this.pass().then((nextDelayMs) => {
        if (this.started) this.schedule(nextDelayMs);
      });
    });
  }
}

const PAGE = 500;

/**
 * Walks every registry in id order, a page at a time, handing each page to `claimPage` (which
 * claims what it wants for this replica and returns what it won), until done or `halted()`.
 */
export async function claimRegistryPages<T>(
  registries: RegistryStore,
  halted: () => boolean,
  claimPage: (page: ContainerRegistry[]) => Promise<T[]>,
): Promise<T[]> {
  const won: T[] = [];
  for (let skip = 0; !halted(); skip += PAGE) {
    const page = await registries.find({}, { sort: [['container_registry_id', 1]], skip, limit: PAGE });
    won.push(...(await claimPage(page)));
    if (page.length < PAGE) break;
  }
  return won;
}
