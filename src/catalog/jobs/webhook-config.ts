import { readBool, readInt, type Env } from '../../shared/config/env.js';

/** Webhook delivery and the event stream of `serve` (README, "Events and webhooks"). */
export interface WebhookConfig {
  readonly deliveryEnabled: boolean;
  /** How often each replica looks for due deliveries written by others (local ones wake it at once). */
  readonly pollMs: number;
  /** Deadline of one delivery attempt, connect to last byte. */
  readonly timeoutMs: number;
  /** Subscriptions delivered to at once per replica (each in its own order). */
  readonly concurrency: number;
  /** Backoff: first retry after about this, doubling, capped at `retryMaxMs`, with jitter. */
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  /** A delivery still failing this long after its first attempt is `failed`. */
  readonly retryWindowMs: number;
  /** Delivered and failed rows, and events, are kept this long (SSE resume reaches this far back). */
  readonly retentionMs: number;
  /** The event stream: store poll period, heartbeat comment period, events buffered per client. */
  readonly streamPollMs: number;
  readonly streamHeartbeatMs: number;
  readonly streamClientBuffer: number;
}

export const WEBHOOK_ENV_VARS = [
  'WEBHOOK_DELIVERY_ENABLED',
  'WEBHOOK_POLL_MS',
  'WEBHOOK_TIMEOUT_MS',
  'WEBHOOK_CONCURRENCY',
  'WEBHOOK_RETRY_INITIAL_MS',
  'WEBHOOK_RETRY_MAX_MS',
  'WEBHOOK_RETRY_WINDOW_MS',
  'EVENT_RETENTION_MS',
  'EVENTS_POLL_MS',
  'EVENTS_HEARTBEAT_MS',
  'EVENTS_CLIENT_BUFFER',
] as const;

export function loadWebhookConfig(env: Env): WebhookConfig {
  return Object.freeze({
    deliveryEnabled: readBool(env, 'WEBHOOK_DELIVERY_ENABLED', true),
    pollMs: readInt(env, 'WEBHOOK_POLL_MS', 500, 10, 60_000),
    timeoutMs: readInt(env, 'WEBHOOK_TIMEOUT_MS', 10_000, 100, 60_000),
    concurrency: readInt(env, 'WEBHOOK_CONCURRENCY', 64, 1, 1024),
    retryInitialMs: readInt(env, 'WEBHOOK_RETRY_INITIAL_MS', 1_000, 10, 3_600_000),
    retryMaxMs: readInt(env, 'WEBHOOK_RETRY_MAX_MS', 3_600_000, 10, 86_400_000),
    retryWindowMs: readInt(env, 'WEBHOOK_RETRY_WINDOW_MS', 86_400_000, 1_000, 7 * 86_400_000),
    retentionMs: readInt(env, 'EVENT_RETENTION_MS', 7 * 86_400_000, 60_000, 90 * 86_400_000),
    streamPollMs: readInt(env, 'EVENTS_POLL_MS', 250, 10, 60_000),
    streamHeartbeatMs: readInt(env, 'EVENTS_HEARTBEAT_MS', 15_000, 100, 300_000),
    streamClientBuffer: readInt(env, 'EVENTS_CLIENT_BUFFER', 1_000, 1, 100_000),
  });
}
