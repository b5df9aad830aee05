import type { Clock } from '../../src/shared/clock.js';

/** A clock that moves only when told: `advance` fires the timers that fall due, in time order. */
export class ManualClock implements Clock {
  private timers: Array<{ at: number; fn: () => void; seq: number }> = [];
  private seq = 0;

  constructor(private current: number) {}

  now(): number {
    return this.current;
  }

  after(ms: number, fn: () => void): () => void {
    const timer = { at: this.current + Math.max(0, ms), fn, seq: this.seq++ };
    this.timers.push(timer);
    return () => void (this.timers = this.timers.filter((t) => t !== timer));
  }

  /** Moves time forward by `ms`, firing each timer at its own time. */
  advance(ms: number): void {
    const until = this.current + ms;
    for (;;) {
      const due = this.timers
        .filter((timer) => timer.at <= until)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((timer) => timer !== due);
      this.current = due.at;
      due.fn();
    }
    this.current = until;
  }
}
