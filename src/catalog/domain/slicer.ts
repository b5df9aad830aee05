import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

/**
 * Cooperative slicing of one request's synchronous steps: `pause()` yields to the event loop
 * when at least `sliceMs` of work ran since the last yield, and costs nothing otherwise, so small
 * documents never wait and large ones let other requests in between their steps.
 */
export class Slicer {
  private since = performance.now();

  constructor(private readonly sliceMs: number) {}

  async pause(): Promise<void> {
    if (performance.now() - this.since < this.sliceMs) return;
    await yieldToEventLoop();
    this.since = performance.now();
  }
}
