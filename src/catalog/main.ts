import { loadCatalogConfig } from '../shared/config/catalog.js';
import type { Env } from '../shared/config/env.js';
import { createLogger } from '../shared/logger.js';
import { SchemaSet } from '../shared/schemas.js';
import { listen, onShutdownSignal } from '../shared/server.js';
import { createCatalogApp } from './app.js';
import { CredentialCipher } from './domain/credential-cipher.js';
import { openStore } from './open-store.js';

/** `serve`: loads config, opens the store, serves the catalog until SIGTERM, then drains. */
export async function runCatalog(env: Env): Promise<void> {
  const config = loadCatalogConfig(env);
  const logger = createLogger('catalog', config.logLevel);
  const store = await openStore(config, logger);
  const cipher = config.credentialKeys.length > 0 ? new CredentialCipher(config.credentialKeys) : undefined;
  if (!cipher) logger.warn('CREDENTIALS_KEYS is not set: registry credentials will be refused, not stored');
  const app = createCatalogApp({
    store,
    schemas: new SchemaSet(),
    logger,
    bodyLimitBytes: config.bodyLimitBytes,
    cipher,
  });
  const server = await listen(app, { host: config.host, port: config.port, logger });
  logger.info({ url: server.url }, 'catalog listening');
  onShutdownSignal(logger, async () => {
    await server.close(config.shutdownTimeoutMs);
    await store.close();
  });
}
