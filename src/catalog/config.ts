import { readFileSync } from 'node:fs';
import { isLoopbackHost } from '../shared/loopback.js';
import { parseTokenEntries, type TokenEntry } from './access/tokens.js';
import {
  ConfigError,
  LOG_LEVELS,
  readBool,
  readChoice,
  readList,
  readInt,
  readOptionalString,
  readString,
  type Env,
  type LogLevel,
} from '../shared/config/env.js';

/** How replace-if-version is made atomic on MongoDB: `auto` claims versions on FerretDB only. */
export const REPLACE_MODES = ['auto', 'atomic', 'claim'] as const;
export type ReplaceMode = (typeof REPLACE_MODES)[number];

/** Configuration of the catalog API server (`serve`). Frozen once loaded. */
export interface CatalogConfig {
  readonly host: string;
  readonly port: number;
  /** Directory of the embedded store; used when `mongodbUri` is unset. */
  readonly dataDir: string;
  readonly mongodbUri: string | undefined;
  readonly mongodbDatabase: string;
  readonly mongodbCollection: string;
  /** How replace-if-version is made atomic on MongoDB (store/mongo-collection.ts). */
  readonly mongodbReplaceMode: ReplaceMode;
  readonly logLevel: LogLevel;
  /** Largest accepted request body, in bytes. */
  readonly bodyLimitBytes: number;
  /** Time allowed for in-flight requests to finish after SIGTERM. */
  readonly shutdownTimeoutMs: number;
  /** Keys for credentials at rest; the first seals. Empty: credentials cannot be stored. */
  readonly credentialKeys: readonly CredentialKey[];
  readonly access: AccessConfig;
  readonly timeouts: ServerTimeouts;
}

/** Who may call the API, and how often (README, Access control). */
export interface AccessConfig {
  /** API tokens (hashed). Empty: no access control, and the server must stay on loopback. */
  readonly tokens: readonly TokenEntry[];
  /** The file the tokens came from, re-read when it changes (revocation without a restart). */
  readonly tokensFile: string | undefined;
  /** Requests without a token may read (never write) when tokens are configured. */
  readonly anonymousRead: boolean;
  /** Requests per second per client (token, else address); 0 turns the limit off. */
  readonly rateLimitPerSecond: number;
  /** On-demand health checks per minute per client: each one makes an outbound request. */
  readonly healthCheckRateLimitPerMinute: number;
  /** Origins allowed to call the API from a browser; empty: CORS off. */
  readonly corsOrigins: readonly string[];
}

/** Node's server timeouts: how long a client may hold a socket (slowloris). */
export interface ServerTimeouts {
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
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
  'MONGODB_REPLACE_MODE',
  'LOG_LEVEL',
  'BODY_LIMIT_BYTES',
  'SHUTDOWN_TIMEOUT_MS',
  'CREDENTIALS_KEYS',
  'CREDENTIALS_KEYS_FILE',
  'API_TOKENS',
  'API_TOKENS_FILE',
  'ANONYMOUS_READ',
  'ALLOW_UNAUTHENTICATED',
  'RATE_LIMIT_PER_SECOND',
  'HEALTH_CHECK_RATE_LIMIT_PER_MINUTE',
  'CORS_ORIGINS',
  'HEADERS_TIMEOUT_MS',
  'REQUEST_TIMEOUT_MS',
  'KEEP_ALIVE_TIMEOUT_MS',
] as const;

export function loadCatalogConfig(env: Env): CatalogConfig {
  const host = readString(env, 'HOST', '127.0.0.1');
  const access = readAccess(env);
  if (access.tokens.length === 0 && !isLoopbackHost(host) && !readBool(env, 'ALLOW_UNAUTHENTICATED', false)) {
    throw new ConfigError(
      'HOST',
      `is ${host}, not a loopback address, and no API tokens are configured: set API_TOKENS or API_TOKENS_FILE, or ALLOW_UNAUTHENTICATED=true (--allow-unauthenticated) to serve without access control`,
    );
  }
  return Object.freeze({
    host,
    port: readInt(env, 'PORT', 8080, 0, 65535),
    dataDir: readString(env, 'DATA_DIR', './data'),
    mongodbUri: readOptionalString(env, 'MONGODB_URI'),
    mongodbDatabase: readString(env, 'MONGODB_DATABASE', 'assets'),
    mongodbCollection: readString(env, 'MONGODB_COLLECTION', 'container_registry'),
    mongodbReplaceMode: readChoice(env, 'MONGODB_REPLACE_MODE', REPLACE_MODES, 'auto'),
    logLevel: readChoice(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    bodyLimitBytes: readInt(env, 'BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    shutdownTimeoutMs: readInt(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    credentialKeys: readCredentialKeys(env),
    access,
    timeouts: {
      headersTimeoutMs: readInt(env, 'HEADERS_TIMEOUT_MS', 10_000, 100, 600_000),
      requestTimeoutMs: readInt(env, 'REQUEST_TIMEOUT_MS', 30_000, 100, 3_600_000),
      keepAliveTimeoutMs: readInt(env, 'KEEP_ALIVE_TIMEOUT_MS', 5_000, 100, 600_000),
    },
  });
}

function readAccess(env: Env): AccessConfig {
  const { text, variable, file } = readSecretText(env, 'API_TOKENS');
  let tokens: TokenEntry[];
  try {
    tokens = text === undefined ? [] : parseTokenEntries(text);
  } catch (error) {
    throw new ConfigError(variable, (error as Error).message);
  }
  return {
    tokens,
    tokensFile: file,
    anonymousRead: readBool(env, 'ANONYMOUS_READ', false),
    rateLimitPerSecond: readInt(env, 'RATE_LIMIT_PER_SECOND', 200, 0, 1_000_000),
    healthCheckRateLimitPerMinute: readInt(env, 'HEALTH_CHECK_RATE_LIMIT_PER_MINUTE', 30, 0, 1_000_000),
    corsOrigins: readList(env, 'CORS_ORIGINS', []),
  };
}

/**
 * A secret given inline (`NAME`) or as a file (`NAME_FILE`, e.g. a mounted Kubernetes Secret);
 * the file wins. Returns the text and the variable to blame in errors.
 */
function readSecretText(
  env: Env,
  name: string,
): { text: string | undefined; variable: string; file: string | undefined } {
  const file = readOptionalString(env, `${name}_FILE`);
  if (file === undefined) return { text: readOptionalString(env, name), variable: name, file };
  try {
    return { text: readFileSync(file, 'utf8'), variable: `${name}_FILE`, file };
  } catch (error) {
    throw new ConfigError(
      `${name}_FILE`,
      `names a file that cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}

/**
 * `CREDENTIALS_KEYS` (or the file named by `CREDENTIALS_KEYS_FILE`, e.g. a mounted Secret):
 * `id:base64key[,id:base64key...]`, one 32-byte key each; the first one seals new values.
 */
function readCredentialKeys(env: Env): CredentialKey[] {
  const { text, variable } = readSecretText(env, 'CREDENTIALS_KEYS');
  if (text === undefined) return [];
  return parseCredentialKeys(text, variable);
}

/** Parses `id:base64key` entries (comma- or line-separated, `#` comments); errors name `variable`. */
export function parseCredentialKeys(text: string, variable: string): CredentialKey[] {
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
