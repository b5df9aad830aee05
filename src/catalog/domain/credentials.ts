import type { ContainerRegistry } from '../model.js';
import { UnprocessableError, ValidationError } from '../errors.js';
import { CREDENTIALS_PATH } from '../language/field-paths.js';
import type { Update } from '../language/update-language.js';
import { SEALED_PREFIX, type CredentialCipher } from './credential-cipher.js';

/**
 * Registry credentials are write-only: sealed at rest (credential-cipher.ts), shown to clients
 * as a mask, opened only for the health prober. What an update keeps, drops or seals anew.
 */

export const MASK = '*****';

/**
 * Encrypts every credential value that is new (not one of `kept`, the sealed values already
 * stored). Without a cipher, credentials are refused: they are never stored in clear.
 */
export function sealCredentials(
  cipher: CredentialCipher | undefined,
  document: ContainerRegistry,
  kept: Record<string, unknown>,
): void {
  const credentials = credentialsOf(document);
  const fresh = Object.entries(credentials).filter(([key, value]) => kept[key] !== value);
  if (fresh.length === 0) return;
  if (!cipher) {
    throw new UnprocessableError(
      'This catalog stores no registry credentials because no encryption key is configured (CREDENTIALS_KEYS); remove container_registry_config.credentials or ask the operator to configure a key',
    );
  }
  for (const [key, value] of fresh) {
    if (typeof value !== 'string') continue;
    if (value.startsWith(SEALED_PREFIX)) {
      throw ValidationError.of(
        [
          {
            pointer: `/container_registry_config/credentials/${key}`,
            message: 'must be the plain secret, not a sealed value',
          },
        ],
        'Invalid credentials',
      );
    }
    credentials[key] = cipher.seal(value, document.container_registry_id, key);
  }
}

/** The stored credentials in clear, for the health prober; never for a response. */
export function openCredentials(
  cipher: CredentialCipher | undefined,
  document: ContainerRegistry,
): Record<string, string> {
  const credentials = credentialsOf(document);
  const open: Record<string, string> = {};
  for (const [key, value] of Object.entries(credentials)) {
    if (typeof value !== 'string') continue;
    open[key] =
      cipher && value.startsWith(SEALED_PREFIX)
        ? cipher.open(value, document.container_registry_id, key)
        : value;
  }
  return open;
}

/** The document as clients see it: credentials replaced by a mask. */
export function toPublic(document: ContainerRegistry): ContainerRegistry {
  const credentials = document.container_registry_config.credentials;
  if (typeof credentials !== 'object' || credentials === null) return document;
  const masked = Object.fromEntries(Object.keys(credentials).map((key) => [key, MASK]));
  return {
    ...document,
    container_registry_config: { ...document.container_registry_config, credentials: masked },
  };
}

export function touchesCredentials(update: Update): boolean {
  return Object.values(update).some((paths) =>
    Object.keys(paths ?? {}).some(
      (path) =>
        path === CREDENTIALS_PATH ||
        path.startsWith(`${CREDENTIALS_PATH}.`) ||
        (path === 'container_registry_config' && typeof paths?.[path] === 'object'),
    ),
  );
}

/**
 * A client that read a document (credentials shown as the mask) and writes it back unchanged
 * keeps the stored secrets: a masked value means "unchanged", never the literal mask.
 */
export function keepMaskedCredentials(next: ContainerRegistry, stored: Record<string, unknown>): void {
  const credentials = next.container_registry_config?.credentials as Record<string, unknown> | undefined;
  if (typeof credentials !== 'object' || credentials === null) return;
  for (const [key, value] of Object.entries(credentials)) {
    if (value !== MASK) continue;
    if (typeof stored[key] === 'string') credentials[key] = stored[key];
    else delete credentials[key];
  }
}

/** The credentials object of a document (live reference), or an empty object. */
export function credentialsOf(document: ContainerRegistry): Record<string, unknown> {
  const credentials = document.container_registry_config?.credentials;
  return typeof credentials === 'object' && credentials !== null && !Array.isArray(credentials)
    ? (credentials as Record<string, unknown>)
    : {};
}

/** A copy for schema validation in which kept (sealed) values stand as the mask: sealing lengthens them. */
export function hideKeptCredentials(
  document: ContainerRegistry,
  kept: Record<string, unknown>,
): ContainerRegistry {
  const credentials = credentialsOf(document);
  if (!Object.values(credentials).some((value) => value !== undefined && Object.values(kept).includes(value)))
    return document;
  const view = Object.fromEntries(
    Object.entries(credentials).map(([key, value]) => [key, kept[key] === value ? MASK : value]),
  );
  return {
    ...document,
    container_registry_config: { ...document.container_registry_config, credentials: view },
  };
}

export function dropCredentials(document: ContainerRegistry): void {
  if (typeof document.container_registry_config === 'object' && document.container_registry_config !== null) {
    delete document.container_registry_config.credentials;
  }
}
