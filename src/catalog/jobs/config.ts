import { readBool, readInt, type Env } from '../../shared/config/env.js';

/** The background health monitor of `serve`. */
export interface MonitorConfig {
  readonly enabled: boolean;
  /** Each registry is probed once per interval, cluster-wide. */
  readonly intervalMs: number;
  /** Probes in flight at once in this replica. */
  readonly concurrency: number;
  /** Probes start spread over this window after each interval starts. */
  readonly jitterMs: number;
  /** Reports kept per registry. */
  readonly historySize: number;
}

export const MONITOR_ENV_VARS = [
  'HEALTH_MONITOR_ENABLED',
  'HEALTH_MONITOR_INTERVAL_MS',
  'HEALTH_MONITOR_CONCURRENCY',
  'HEALTH_MONITOR_JITTER_MS',
  'HEALTH_HISTORY_SIZE',
] as const;

export function loadMonitorConfig(env: Env): MonitorConfig {
  const intervalMs = readInt(env, 'HEALTH_MONITOR_INTERVAL_MS', 60_000, 1_000, 86_400_000);
  return Object.freeze({
    enabled: readBool(env, 'HEALTH_MONITOR_ENABLED', true),
    intervalMs,
    // Enough to wait out a fifth of 1,000 registries hanging until the timeout, in parallel.
    concurrency: readInt(env, 'HEALTH_MONITOR_CONCURRENCY', 256, 1, 4096),
    jitterMs: readInt(
      env,
      'HEALTH_MONITOR_JITTER_MS',
      Math.min(1_000, Math.floor(intervalMs / 10)),
      0,
      intervalMs,
    ),
    historySize: readInt(env, 'HEALTH_HISTORY_SIZE', 50, 1, 1000),
  });
}
