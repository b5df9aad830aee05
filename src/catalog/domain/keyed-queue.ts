/**
 * Runs tasks one at a time per key, in arrival order; tasks of different keys run concurrently.
 * Used to serialize updates of one registry inside a process, so that compare-and-swap retries
 * only happen between replicas: without it, N concurrent updates of one entry in one process
 * cost up to N² reads and writes as each loser re-reads and retries.
 */
export class KeyedQueue {
  /** The tail of each key's chain; removed when the last task of the key settles. */
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `task` after every task queued before it under `key`; settles as `task` does. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    // A failed task must not fail the ones queued after it: they wait for it to settle, not to succeed.
    const result = previous.then(task, task);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with a task running or waiting (for tests and metrics). */
  get size(): number {
    return this.tails.size;
  }
}
