import { hostname } from 'node:os';
import { loadCatalogConfig } from '../shared/config/catalog.js';
import type { Env } from '../shared/config/env.js';
import { loadHealthConfig } from '../shared/config/health.js';
import { loadMonitorConfig } from '../shared/config/monitor.js';
import { createLogger } from '../shared/logger.js';
import { SchemaSet } from '../shared/schemas.js';
import { listen, onShutdownSignal } from '../shared/server.js';
import { createCatalog } from './app.js';
import { CredentialCipher } from './domain/credential-cipher.js';
import { AddressPolicy } from './health/address-policy.js';
import { HealthMonitor } from './health/monitor.js';
import { createProber } from './health/probe.js';
import { openStores } from './open-store.js';

/** `serve`: loads config, opens the store, serves the catalog and runs the monitor until SIGTERM, then drains. */
export async function runCatalog(env: Env): Promise<void> {
  const config = loadCatalogConfig(env);
  const healthConfig = loadHealthConfig(env);
  const monitorConfig = loadMonitorConfig(env);
  const logger = createLogger('catalog', config.logLevel);
  const { store, healthStore } = await openStores(config, logger);
  const cipher = config.credentialKeys.length > 0 ? new CredentialCipher(config.credentialKeys) : undefined;
  if (!cipher) logger.warn('CREDENTIALS_KEYS is not set: registry credentials will be refused, not stored');
  const probe = createProber({
    policy: AddressPolicy.fromConfig(healthConfig),
    defaultTimeoutMs: healthConfig.probeTimeoutMs,
  });
  const catalog = createCatalog({
    store,
    schemas: new SchemaSet(),
    logger,
    bodyLimitBytes: config.bodyLimitBytes,
    cipher,
    health: { store: healthStore, probe, historySize: monitorConfig.historySize },
  });
  const server = await listen(catalog.handler, { host: config.host, port: config.port, logger });
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
  onShutdownSignal(logger, async () => {
    await monitor?.stop();
    await server.close(config.shutdownTimeoutMs);
    await store.close();
  });
}
