/** Time as background jobs see it: injectable, so tests drive a job's timers without sleeping. */
export interface Clock {
  now(): number;
  /** Calls `fn` after `ms`; the returned function cancels it. The timer never keeps the process alive. */
  after(ms: number, fn: () => void): () => void;
}

/** The real clock: `Date.now` and unref'd `setTimeout`. */
export const SYSTEM_CLOCK: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};
