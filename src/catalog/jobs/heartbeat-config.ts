import { readBool, readInt, type Env } from '../../shared/config/env.js';

/** The stale-heartbeat watch of `serve` (jobs/heartbeat-watch.ts). */
export interface HeartbeatWatchConfig {
  readonly enabled: boolean;
  /** How often self-registered entries are checked for a stale transition. */
  readonly intervalMs: number;
}

export const HEARTBEAT_WATCH_ENV_VARS = ['HEARTBEAT_WATCH_ENABLED', 'HEARTBEAT_WATCH_INTERVAL_MS'] as const;

export function loadHeartbeatWatchConfig(env: Env): HeartbeatWatchConfig {
  return Object.freeze({
    enabled: readBool(env, 'HEARTBEAT_WATCH_ENABLED', true),
    intervalMs: readInt(env, 'HEARTBEAT_WATCH_INTERVAL_MS', 5_000, 50, 3_600_000),
  });
}
