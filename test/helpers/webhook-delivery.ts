import { AddressPolicy } from '../../src/catalog/health/address-policy.js';
import { createWebhookPost } from '../../src/catalog/health/webhook-post.js';
import { WebhookDeliveryJob, type WebhookDeliveryDeps } from '../../src/catalog/jobs/webhook-delivery.js';
import { createLogger } from '../../src/shared/logger.js';
import type { TestCatalog } from './catalog.js';

/** Where the test receivers listen: 127.0.0.0/8 and ::1. */
export const LOOPBACK_POLICY = new AddressPolicy({ allow: ['127.0.0.0/8', '::1/128'], deny: [] });

/** Polls and retries fast enough for a test to watch them; a day's retry window and retention. */
export const FAST_RETRIES: WebhookDeliveryDeps['config'] = {
  pollMs: 50,
  timeoutMs: 500,
  concurrency: 16,
  retryInitialMs: 40,
  retryMaxMs: 200,
  retryWindowMs: 86_400_000,
  retentionMs: 86_400_000,
};

/**
 * The webhook delivery job of an in-process catalog, as `serve` wires it, not started; `config`
 * overrides `FAST_RETRIES`. Logs go to `TEST_LOG` (default silent).
 */
export function deliveryJob(
  catalog: TestCatalog,
  options: { owner?: string; policy?: AddressPolicy; config?: Partial<WebhookDeliveryDeps['config']> } = {},
): WebhookDeliveryJob {
  const owner = options.owner ?? 'test';
  return new WebhookDeliveryJob({
    store: catalog.eventStore,
    webhooks: catalog.catalog.events!.webhooks,
    publisher: catalog.catalog.events!.publisher,
    post: createWebhookPost(options.policy ?? LOOPBACK_POLICY),
    config: { ...FAST_RETRIES, ...options.config },
    logger: createLogger(owner, (process.env.TEST_LOG as 'silent' | undefined) ?? 'silent'),
    owner,
  });
}
