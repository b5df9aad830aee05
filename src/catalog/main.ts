import pLimit from 'p-limit';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { hostname } from 'node:os';
import { loadCatalogConfig } from './config.js';
import { ConfigError, type Env } from '../shared/config/env.js';
import { loadHealthConfig } from './health/config.js';
import { loadMonitorConfig } from './jobs/config.js';
import { loadCrawlConfig } from './jobs/crawl-config.js';
import { CrawlerJob } from './jobs/crawler.js';
import { createCrawler } from './health/crawl.js';
import { createLogger, type Logger } from '../shared/logger.js';
import { SchemaSet } from '../shared/schemas.js';
import { listen, onShutdownSignal } from '../shared/server.js';
import { AccessPolicy } from './access/policy.js';
import { parseTokenEntries } from './access/tokens.js';
import { createCatalog } from './app.js';
import { CredentialCipher } from './domain/credential-cipher.js';
import { RegistryService } from './domain/registries.js';
import { AddressPolicy } from './health/address-policy.js';
import { HealthMonitor } from './jobs/monitor.js';
import { createProber } from './health/probe.js';
import type { ProbeTarget } from './model.js';
import { credentialKeysFor } from './store/credentials-key-file.js';
import { openStores } from './store/open-stores.js';
import { backupEmbeddedStore } from './store/sqlite-backup.js';
import { loadHeartbeatWatchConfig } from './jobs/heartbeat-config.js';
import { HeartbeatWatch } from './jobs/heartbeat-watch.js';
import { loadWebhookConfig } from './jobs/webhook-config.js';
import { WebhookDeliveryJob } from './jobs/webhook-delivery.js';
import { INTENT_GRACE_MS } from './events/registry-outbox.js';
import { createWebhookPost, destinationProblem } from './health/webhook-post.js';

/** `serve`: loads config, opens the store, serves the catalog and runs the monitor until SIGTERM, then drains. */
export async function runCatalog(env: Env): Promise<void> {
  const config = loadCatalogConfig(env);
  const healthConfig = loadHealthConfig(env);
  const monitorConfig = loadMonitorConfig(env);
  const crawlConfig = loadCrawlConfig(env);
  const webhookConfig = loadWebhookConfig(env);
  const logger = createLogger('catalog', config.logLevel);
  const heartbeatWatchConfig = loadHeartbeatWatchConfig(env);
  const { store, healthStore, imageStore, heartbeatStore, eventStore } = await openStores(config, logger);
  const credentialKeys = credentialKeysFor(config, logger);
  const cipher = credentialKeys.length > 0 ? new CredentialCipher(credentialKeys) : undefined;
  if (!cipher)
    logger.warn(
      'CREDENTIALS_KEYS is not set (required with MONGODB_URI): registry credentials will be refused, not stored',
    );
  const { access } = config;
  const policy = new AccessPolicy(
    access.tokens,
    access.anonymousRead,
    Date.now,
    access.tokensFile !== undefined,
  );
  if (access.tokensFile !== undefined && access.tokens.length === 0)
    logger.warn(
      { file: access.tokensFile },
      'API_TOKENS_FILE lists no token: access control is on and only /healthz and /readyz answer until one is added',
    );
  if (!policy.enabled)
    logger.warn(
      { host: config.host },
      'no API tokens configured (API_TOKENS, API_TOKENS_FILE): access control is off, anyone who can connect may read and write',
    );
  if (access.tokensFile !== undefined) reloadOnChange(access.tokensFile, policy, logger);
  const addressPolicy = AddressPolicy.fromConfig(healthConfig);
  const prober = createProber({ policy: addressPolicy, defaultTimeoutMs: healthConfig.probeTimeoutMs });
  // The crawler goes through the same address policy, DNS guard and TLS settings as the probe.
  const crawl = createCrawler({
    policy: addressPolicy,
    limits: { ...crawlConfig, requestTimeoutMs: healthConfig.probeTimeoutMs },
  });
  // One bound on outbound requests, whoever asks (the monitor, or clients' on-demand checks).
  const outbound = pLimit(healthConfig.probeMaxConcurrent);
  const probe = (target: ProbeTarget) => outbound(() => prober(target));
  const catalog = createCatalog({
    store,
    schemas: new SchemaSet(),
    logger,
    bodyLimitBytes: config.bodyLimitBytes,
    cipher,
    health: { store: healthStore, probe, historySize: monitorConfig.historySize },
    access: { policy, ...access },
    images: { store: imageStore, crawl },
    heartbeats: { store: heartbeatStore },
    // Webhooks and GET /events: URLs pass the probe's SSRF policy (address-policy.ts).
    events: {
      store: eventStore,
      checkDestination: (url) => destinationProblem(url, addressPolicy),
      stream: {
        pollMs: webhookConfig.streamPollMs,
        heartbeatMs: webhookConfig.streamHeartbeatMs,
        clientBuffer: webhookConfig.streamClientBuffer,
      },
    },
  });
  const deliveries =
    webhookConfig.deliveryEnabled && catalog.events
      ? new WebhookDeliveryJob({
          store: eventStore,
          webhooks: catalog.events.webhooks,
          publisher: catalog.events.publisher,
          post: createWebhookPost(addressPolicy),
          config: webhookConfig,
          logger,
          owner: `${hostname()}:${process.pid}`,
        })
      : undefined;
  // Changes whose writer died before appending their event (registry-outbox.ts): settled before
  // serving, then other replicas' leftovers every few seconds.
  const outbox = catalog.events?.outbox;
  await outbox?.recover(0);
  const outboxTimer =
    outbox &&
    setInterval(
      () =>
        void outbox
          .recover()
          .catch((error: unknown) => logger.warn({ err: error }, 'outbox recovery failed')),
      INTENT_GRACE_MS,
    ).unref();
  deliveries?.start();
  const server = await listen(catalog.handler, {
    host: config.host,
    port: config.port,
    logger,
    timeouts: config.timeouts,
  });
  logger.info({ url: server.url }, 'catalog listening');
  const monitor =
    monitorConfig.enabled && catalog.health
      ? new HealthMonitor({
          registries: store,
          healthStore,
          health: catalog.health,
          config: monitorConfig,
          logger,
          owner: `${hostname()}:${process.pid}`,
        })
      : undefined;
  monitor?.start();
  const crawler =
    crawlConfig.enabled && catalog.images
      ? new CrawlerJob({
          registries: store,
          healthStore,
          imageStore,
          images: catalog.images,
          config: crawlConfig,
          logger,
          owner: `${hostname()}:${process.pid}`,
        })
      : undefined;
  crawler?.start();
  // Stale transitions of self-registered registries become `registry.heartbeat.stale` events.
  const heartbeatWatch =
    heartbeatWatchConfig.enabled && catalog.heartbeats
      ? new HeartbeatWatch({
          heartbeats: catalog.heartbeats,
          config: heartbeatWatchConfig,
          logger,
          onStale:
            catalog.events &&
            (async ({ registry, heartbeat }) => {
              await catalog.events!.heartbeatStale(registry.container_registry_id, { heartbeat });
            }),
        })
      : undefined;
  heartbeatWatch?.start();
  onShutdownSignal(logger, async () => {
    await heartbeatWatch?.stop();
    if (access.tokensFile !== undefined) unwatchFile(access.tokensFile);
    catalog.events?.stream.close();
    clearInterval(outboxTimer);
    await deliveries?.stop();
    await crawler?.stop();
    await monitor?.stop();
    await server.close(config.shutdownTimeoutMs);
    await store.close();
  });
}

/**
 * Re-reads the tokens file when it changes (a token added or revoked takes effect without a
 * restart; a mounted Kubernetes Secret is replaced in place). Polled: inotify misses the
 * symlink swap Secrets use. A file that no longer parses keeps the tokens already loaded.
 */
function reloadOnChange(file: string, policy: AccessPolicy, logger: Logger): void {
  watchFile(file, { interval: 1_000, persistent: false }, () => {
    try {
      const tokens = parseTokenEntries(readFileSync(file, 'utf8'));
      policy.replaceTokens(tokens);
      logger.info({ tokens: tokens.length }, 'API tokens reloaded');
    } catch (error) {
      logger.error({ err: error }, 'API tokens file not reloaded, keeping the previous tokens');
    }
  });
}

/**
 * `rotate-credentials`: re-encrypts every stored credential with the first key of
 * CREDENTIALS_KEYS. Prints a JSON report; exits non-zero when some entry could not be opened.
 */
export async function runRotateCredentials(env: Env, options: { dryRun: boolean }): Promise<boolean> {
  const config = loadCatalogConfig({ ...env, HOST: '127.0.0.1' }); // this command listens nowhere
  const logger = createLogger('catalog', config.logLevel);
  if (config.credentialKeys.length === 0 && config.mongodbUri !== undefined)
    throw new ConfigError('CREDENTIALS_KEYS', 'must be set to rotate keys');
  const { store } = await openStores(config, logger);
  try {
    const keys = credentialKeysFor(config, logger);
    const registries = new RegistryService({
      store,
      schemas: new SchemaSet(),
      cipher: new CredentialCipher(keys),
    });
    const report = await registries.resealCredentials(options);
    process.stdout.write(
      `${JSON.stringify({ key: keys[0]!.id, dry_run: options.dryRun, ...report }, null, 2)}\n`,
    );
    return report.unreadable.length === 0;
  } finally {
    await store.close();
  }
}

/** `backup --to FILE`: online copy of the embedded store (README, "Backup and restore"). Prints a JSON report. */
export async function runBackup(env: Env, to: string): Promise<void> {
  const config = loadCatalogConfig({ ...env, HOST: '127.0.0.1' }); // this command listens nowhere
  if (config.mongodbUri !== undefined)
    throw new ConfigError(
      'MONGODB_URI',
      'is set: back up MongoDB with mongodump; backup copies the embedded store',
    );
  const report = await backupEmbeddedStore(config.dataDir, to);
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}
