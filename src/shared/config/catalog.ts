import { readFileSync } from 'node:fs';
import {
  ConfigError,
  LOG_LEVELS,
  readChoice,
  readInt,
  readOptionalString,
  readString,
  type Env,
  type LogLevel,
} from './env.js';

/** Configuration of the catalog API server (`serve`). Frozen once loaded. */
export interface CatalogConfig {
  readonly host: string;
  readonly port: number;
  /** Directory of the embedded store; used when `mongodbUri` is unset. */
  readonly dataDir: string;
  readonly mongodbUri: string | undefined;
  readonly mongodbDatabase: string;
  readonly mongodbCollection: string;
  readonly logLevel: LogLevel;
  /** Largest accepted request body, in bytes. */
  readonly bodyLimitBytes: number;
  /** Time allowed for in-flight requests to finish after SIGTERM. */
  readonly shutdownTimeoutMs: number;
  /** Keys for credentials at rest; the first seals. Empty: credentials cannot be stored. */
  readonly credentialKeys: readonly CredentialKey[];
}

/** An AES-256 key for registry credentials at rest, named so keys can be rotated. */
export interface CredentialKey {
  readonly id: string;
  /** 32 bytes. */
  readonly key: Buffer;
}

/** Every environment variable the catalog reads, for `--help` and the manifest consistency test. */
export const CATALOG_ENV_VARS = [
  'HOST',
  'PORT',
  'DATA_DIR',
  'MONGODB_URI',
  'MONGODB_DATABASE',
  'MONGODB_COLLECTION',
  'LOG_LEVEL',
  'BODY_LIMIT_BYTES',
  'SHUTDOWN_TIMEOUT_MS',
  'CREDENTIALS_KEYS',
  'CREDENTIALS_KEYS_FILE',
] as const;

export function loadCatalogConfig(env: Env): CatalogConfig {
  return Object.freeze({
    host: readString(env, 'HOST', '127.0.0.1'),
    port: readInt(env, 'PORT', 8080, 0, 65535),
    dataDir: readString(env, 'DATA_DIR', './data'),
    mongodbUri: readOptionalString(env, 'MONGODB_URI'),
    mongodbDatabase: readString(env, 'MONGODB_DATABASE', 'assets'),
    mongodbCollection: readString(env, 'MONGODB_COLLECTION', 'container_registry'),
    logLevel: readChoice(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    bodyLimitBytes: readInt(env, 'BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    shutdownTimeoutMs: readInt(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    credentialKeys: readCredentialKeys(env),
  });
}

/**
 * `CREDENTIALS_KEYS` (or the file named by `CREDENTIALS_KEYS_FILE`, e.g. a mounted Secret):
 * `id:base64key[,id:base64key...]`, one 32-byte key each; the first one seals new values.
 */
function readCredentialKeys(env: Env): CredentialKey[] {
  const file = readOptionalString(env, 'CREDENTIALS_KEYS_FILE');
  let text = readOptionalString(env, 'CREDENTIALS_KEYS');
  let variable = 'CREDENTIALS_KEYS';
  if (file !== undefined) {
    variable = 'CREDENTIALS_KEYS_FILE';
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError(
        variable,
        `names a file that cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  }
  if (text === undefined) return [];
  const keys = text
    .split(/[,\n]/)
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '' && !entry.startsWith('#'))
    .map((entry) => {
      const separator = entry.indexOf(':');
      const id = entry.slice(0, separator);
      const key = Buffer.from(entry.slice(separator + 1), 'base64');
      if (separator <= 0 || !/^[\w.-]{1,32}$/.test(id))
        throw new ConfigError(variable, 'must list keys as <id>:<base64 of 32 bytes>');
      if (key.length !== 32)
        throw new ConfigError(variable, `key ${id} is not 32 bytes (make one with: openssl rand -base64 32)`);
      return { id, key };
    });
  if (new Set(keys.map(({ id }) => id)).size !== keys.length)
    throw new ConfigError(variable, 'lists the same key id twice');
  return keys;
}
