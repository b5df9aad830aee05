import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { QueryTimeoutError } from './collection.js';

/**
 * The CPU budget of queries evaluated in process (the embedded store's filters). Matching is
 * linear-time per document (linear-regex.ts), but a catalog of thousands of large documents
 * still adds up, so a scan:
 *  - runs in slices of at most `sliceMs` of work, yielding to the event loop between them, so
 *    `/healthz` and cheap requests are served meanwhile;
 *  - runs one at a time per store (`ScanGate`): concurrent scans would each take a slice per
 *    turn of the event loop and add up to one long stall; queued, a request waits for the CPU
 *    it would otherwise share, and other requests wait for one slice at most;
 *  - gives up with `QueryTimeoutError` `maxTimeMs` after it was asked for (waiting included),
 *    as MongoDB's `maxTimeMS` does.
 */
export interface ScanBudget {
  /** Longest run of work between two yields to the event loop. */
  readonly sliceMs: number;
  /** Longest a scan may take from the request for it (queueing and yields included). */
  readonly maxTimeMs: number;
}

export const DEFAULT_SCAN_BUDGET: ScanBudget = { sliceMs: 10, maxTimeMs: 5_000 };

/** Runs scans one at a time, in arrival order. One per store. */
export class ScanGate {
  private tail: Promise<unknown> = Promise.resolve();

  constructor(readonly budget: ScanBudget) {}

  /**
   * Calls `visit` on each row of every page `nextPage` returns (an empty page ends the scan),
   * within the budget.
   */
  async scan<Row>(nextPage: () => readonly Row[], visit: (row: Row) => void): Promise<void> {
    const asked = performance.now();
    const run = this.tail.then(() => this.slices(asked, nextPage, visit));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async slices<Row>(
    asked: number,
    nextPage: () => readonly Row[],
    visit: (row: Row) => void,
  ): Promise<void> {
    const { sliceMs, maxTimeMs } = this.budget;
    let sliceStart = performance.now();
    if (sliceStart - asked >= maxTimeMs) throw new QueryTimeoutError(maxTimeMs);
    for (let page = nextPage(); page.length > 0; page = nextPage()) {
      for (const row of page) {
        visit(row);
        const now = performance.now();
        if (now - sliceStart >= sliceMs) {
          if (now - asked >= maxTimeMs) throw new QueryTimeoutError(maxTimeMs);
          await yieldToEventLoop();
          sliceStart = performance.now();
        }
      }
    }
  }
}
