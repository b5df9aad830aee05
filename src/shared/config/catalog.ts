import { LOG_LEVELS, readChoice, readInt, readOptionalString, readString, type Env, type LogLevel } from './env.js';

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
  });
}
