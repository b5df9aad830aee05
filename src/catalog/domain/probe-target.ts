import type { Logger } from '../../shared/logger.js';
import type { ContainerRegistry, ProbeTarget } from '../model.js';
import type { RegistryService } from './registries.js';

/**
 * How to reach a registry document: its URL, timeout, TLS settings and stored credentials in
 * clear. Shared by the health probe and the crawler, so both log in and verify TLS alike.
 */
export function probeTargetOf(
  document: ContainerRegistry,
  registries: RegistryService,
  logger: Logger,
): ProbeTarget {
  const config = document.container_registry_config;
  let credentials: Record<string, string> | undefined;
  try {
    credentials = registries.openCredentials(document);
  } catch (error) {
    logger.warn(
      { registryId: document.container_registry_id, err: (error as Error).message },
      'stored credentials cannot be opened; going without them',
    );
  }
  return {
    url: document.container_registry_public_url,
    timeoutMs:
      typeof config.health_check_timeout_ms === 'number' ? config.health_check_timeout_ms : undefined,
    insecureSkipTlsVerify: config.insecure_skip_tls_verify === true,
    caBundle: typeof config.ca_bundle === 'string' ? config.ca_bundle : undefined,
    credentials: credentials && Object.keys(credentials).length > 0 ? credentials : undefined,
  };
}
