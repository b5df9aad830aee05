import { readBool, readInt, type Env } from '../../shared/config/env.js';

/** The image crawler of `serve` (DESIGN.md section 8). */
export interface CrawlConfig {
  readonly enabled: boolean;
  /** Each registry is crawled once per interval, cluster-wide (a registry's `crawl.interval_ms` wins). */
  readonly intervalMs: number;
  /** Requests in flight at once to one registry. */
  readonly concurrencyPerRegistry: number;
  /** Registries crawled at once by this replica. */
  readonly concurrentRegistries: number;
  /** Requests one crawl may send; beyond it the crawl stops, partial. */
  readonly requestBudget: number;
  /** Longest crawl of one registry; beyond it the crawl stops, partial. */
  readonly timeoutMs: number;
  /** Manifests larger than this are skipped with an error in the report. */
  readonly maxManifestBytes: number;
  /** Longest `Retry-After` the crawler waits for; longer stops the crawl. */
  readonly maxRetryAfterMs: number;
  /** Referrer counts of an unchanged digest older than this are read again (health/crawl.ts). */
  readonly referrersMaxAgeMs: number;
}

export const CRAWL_ENV_VARS = [
  'CRAWL_ENABLED',
  'CRAWL_INTERVAL_MS',
  'CRAWL_CONCURRENCY_PER_REGISTRY',
  'CRAWL_CONCURRENT_REGISTRIES',
  'CRAWL_REQUEST_BUDGET',
  'CRAWL_TIMEOUT_MS',
  'CRAWL_MAX_MANIFEST_BYTES',
  'CRAWL_MAX_RETRY_AFTER_MS',
  'CRAWL_REFERRERS_MAX_AGE_MS',
] as const;

export function loadCrawlConfig(env: Env): CrawlConfig {
  return Object.freeze({
    enabled: readBool(env, 'CRAWL_ENABLED', true),
    intervalMs: readInt(env, 'CRAWL_INTERVAL_MS', 600_000, 1_000, 604_800_000),
    concurrencyPerRegistry: readInt(env, 'CRAWL_CONCURRENCY_PER_REGISTRY', 4, 1, 64),
    concurrentRegistries: readInt(env, 'CRAWL_CONCURRENT_REGISTRIES', 4, 1, 256),
    requestBudget: readInt(env, 'CRAWL_REQUEST_BUDGET', 50_000, 10, 10_000_000),
    timeoutMs: readInt(env, 'CRAWL_TIMEOUT_MS', 300_000, 1_000, 86_400_000),
    maxManifestBytes: readInt(env, 'CRAWL_MAX_MANIFEST_BYTES', 4 * 1024 * 1024, 1024, 64 * 1024 * 1024),
    maxRetryAfterMs: readInt(env, 'CRAWL_MAX_RETRY_AFTER_MS', 30_000, 0, 600_000),
    referrersMaxAgeMs: readInt(env, 'CRAWL_REFERRERS_MAX_AGE_MS', 3_600_000, 0, 604_800_000),
  });
}
