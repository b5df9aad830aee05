/**
 * Per-upstream circuit breaker: after `threshold` failures in a row the upstream is considered
 * down for a cool-down period, during which requests do not wait on it at all (cached tags are
 * served stale at once, uncached content fails at once). When the cool-down ends one request is
 * let through as a probe; its success closes the circuit, its failure reopens it for twice as
 * long (up to `maxOpenMs`).
 */
export interface CircuitBreakerOptions {
  readonly threshold: number;
  readonly openMs: number;
  readonly maxOpenMs: number;
}

export const BREAKER_DEFAULTS: CircuitBreakerOptions = { threshold: 3, openMs: 5_000, maxOpenMs: 60_000 };

export class CircuitBreaker {
  private failures = 0;
  private openUntil = 0;
  private currentOpenMs: number;
  private probing = false;

  constructor(
    private readonly now: () => number = Date.now,
    private readonly options: CircuitBreakerOptions = BREAKER_DEFAULTS,
  ) {
    this.currentOpenMs = options.openMs;
  }

  /** Whether a request may go upstream now (false while open; true for one probe afterwards). */
  allow(): boolean {
    if (this.failures < this.options.threshold) return true;
    if (this.now() < this.openUntil || this.probing) return false;
    this.probing = true;
    return true;
  }

  /** Whether the circuit is open (for metrics and logs). */
  get open(): boolean {
    return this.failures >= this.options.threshold;
  }

  success(): void {
    this.failures = 0;
    this.probing = false;
    this.currentOpenMs = this.options.openMs;
  }

  failure(): void {
    this.failures += 1;
    if (this.failures < this.options.threshold) return;
    if (this.probing) this.currentOpenMs = Math.min(this.currentOpenMs * 2, this.options.maxOpenMs);
    this.probing = false;
    this.openUntil = this.now() + this.currentOpenMs;
  }
}
