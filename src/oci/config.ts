import {
  LOG_LEVELS,
  readBool,
  readChoice,
  readInt,
  readList,
  readOptionalString,
  readString,
  type Env,
  type LogLevel,
} from '../shared/config/env.js';
import { PROXY_DEFAULTS, parseProxySpecs, resolveUpstreams, type UpstreamConfig } from './proxy/config.js';
import { STORAGE_ENV_VARS, readS3Settings, type S3Settings } from './storage-config.js';
import { REGISTRATION_ENV_VARS, readRegistration, type RegistrationConfig } from './registration/config.js';

/** Configuration of the bundled OCI registry (`registry` and `gc`). Frozen once loaded. */
export interface OciConfig {
  /**
   * Listen address. Default 0.0.0.0: a registry exists to be reached by other hosts (nodes
   * pulling images); the Kubernetes deployment sets it explicitly.
   */
  readonly host: string;
  readonly port: number;
  /** Root of the content-addressed storage (the PV in Kubernetes: /var/lib/registry). */
  readonly storageRoot: string;
  /** S3 storage instead of `storageRoot` when `REGISTRY_STORAGE_URL` is set (storage-config.ts). */
  readonly s3: S3Settings | undefined;
  /** Apache htpasswd file (bcrypt); when set, every /v2/ request needs Basic auth. */
  readonly htpasswd: string | undefined;
  /** Token mode's config file (YAML/JSON, see `auth/auth-config.ts`); excludes `htpasswd`. */
  readonly authConfig: string | undefined;
  /** Refuse every write (405 UNSUPPORTED), e.g. while `gc` runs without a grace period. */
  readonly readOnly: boolean;
  readonly logLevel: LogLevel;
  /** Uploads untouched for this long are abandoned and removed. */
  readonly uploadTimeoutSeconds: number;
  /** Largest manifest accepted by PUT (the spec asks registries to accept at least 4 MiB). */
  readonly maxManifestBytes: number;
  /** Largest blob an upload may grow to (413 SIZE_INVALID beyond it). */
  readonly maxUploadBytes: number;
  /** Requests streaming blob data into one repository at once (429 TOOMANYREQUESTS beyond). */
  readonly maxConcurrentUploadsPerRepo: number;
  /** Open upload sessions per repository and per client address (429 TOOMANYREQUESTS beyond). */
  readonly maxUploadSessionsPerRepo: number;
  readonly maxUploadSessionsPerClient: number;
  /** htpasswd users that may pull but not push or delete (403 DENIED). */
  readonly readOnlyUsers: readonly string[];
  /** Time a client has to send a request's headers, from connecting (slowloris, silent sockets). */
  readonly headersTimeoutMs: number;
  /** Time a client has to send a whole request: long, since one request can carry a large layer. */
  readonly requestTimeoutMs: number;
  /** Time allowed for in-flight requests (uploads) to finish after SIGTERM. */
  readonly shutdownTimeoutMs: number;
  /** `gc` keeps anything written or referenced more recently than this (in-flight pushes). */
  readonly gcGracePeriodSeconds: number;
  /** Pull-through cache upstreams by repository prefix (`--proxy`, `--proxy-config`); empty: none. */
  readonly upstreams: readonly UpstreamConfig[];
  /** `gc`: bytes the pull-through cache may keep; beyond, least recently pulled manifests go. */
  readonly proxyMaxBytes: number | undefined;
  /** Self-registration with a catalog (`--register-with`); undefined: the registry stays unlisted. */
  readonly registration: RegistrationConfig | undefined;
}

/** Every environment variable the registry reads, for `--help` and the manifest consistency test. */
export const REGISTRY_ENV_VARS = [
  'REGISTRY_HOST',
  'REGISTRY_PORT',
  'REGISTRY_STORAGE_ROOT',
  'REGISTRY_HTPASSWD',
  'REGISTRY_AUTH_CONFIG',
  'REGISTRY_READ_ONLY',
  'LOG_LEVEL',
  'REGISTRY_UPLOAD_TIMEOUT_SECONDS',
  'REGISTRY_MAX_MANIFEST_BYTES',
  'REGISTRY_MAX_UPLOAD_BYTES',
  'REGISTRY_MAX_CONCURRENT_UPLOADS_PER_REPO',
  'REGISTRY_MAX_UPLOAD_SESSIONS_PER_REPO',
  'REGISTRY_MAX_UPLOAD_SESSIONS_PER_CLIENT',
  'REGISTRY_READ_ONLY_USERS',
  'REGISTRY_REQUEST_TIMEOUT_MS',
  'REGISTRY_HEADERS_TIMEOUT_MS',
  'REGISTRY_SHUTDOWN_TIMEOUT_MS',
  'REGISTRY_GC_GRACE_PERIOD_SECONDS',
  'REGISTRY_PROXY',
  'REGISTRY_PROXY_CONFIG',
  'REGISTRY_PROXY_TTL_SECONDS',
  'REGISTRY_PROXY_MAX_STALE_SECONDS',
  'REGISTRY_PROXY_UPSTREAM_TIMEOUT_MS',
  'REGISTRY_PROXY_MAX_BYTES',
  ...STORAGE_ENV_VARS,
  ...REGISTRATION_ENV_VARS,
] as const;

export function loadOciConfig(env: Env): OciConfig {
  return Object.freeze({
    host: readString(env, 'REGISTRY_HOST', '0.0.0.0'),
    port: readInt(env, 'REGISTRY_PORT', 5000, 0, 65535),
    storageRoot: readString(env, 'REGISTRY_STORAGE_ROOT', './data/registry'),
    s3: readS3Settings(env),
    htpasswd: readOptionalString(env, 'REGISTRY_HTPASSWD'),
    authConfig: readOptionalString(env, 'REGISTRY_AUTH_CONFIG'),
    readOnly: readBool(env, 'REGISTRY_READ_ONLY', false),
    logLevel: readChoice(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    // Idle sessions expire after an hour (Distribution: 7 days, purged hourly): an upload that is
    // making progress touches its data file with every chunk, so only abandoned ones go.
    uploadTimeoutSeconds: readInt(env, 'REGISTRY_UPLOAD_TIMEOUT_SECONDS', 3600, 60, 30 * 24 * 3600),
    maxManifestBytes: readInt(
      env,
      'REGISTRY_MAX_MANIFEST_BYTES',
      4 * 1024 * 1024,
      4 * 1024 * 1024,
      64 * 1024 * 1024,
    ),
    maxUploadBytes: readInt(env, 'REGISTRY_MAX_UPLOAD_BYTES', 10 * 1024 ** 3, 1024 * 1024, 1024 ** 4),
    maxConcurrentUploadsPerRepo: readInt(env, 'REGISTRY_MAX_CONCURRENT_UPLOADS_PER_REPO', 32, 1, 10_000),
    maxUploadSessionsPerRepo: readInt(env, 'REGISTRY_MAX_UPLOAD_SESSIONS_PER_REPO', 100, 1, 1_000_000),
    maxUploadSessionsPerClient: readInt(env, 'REGISTRY_MAX_UPLOAD_SESSIONS_PER_CLIENT', 50, 1, 1_000_000),
    readOnlyUsers: readList(env, 'REGISTRY_READ_ONLY_USERS', []),
    headersTimeoutMs: readInt(env, 'REGISTRY_HEADERS_TIMEOUT_MS', 20_000, 100, 600_000),
    requestTimeoutMs: readInt(env, 'REGISTRY_REQUEST_TIMEOUT_MS', 3_600_000, 1_000, 86_400_000),
    shutdownTimeoutMs: readInt(env, 'REGISTRY_SHUTDOWN_TIMEOUT_MS', 30_000, 0, 600_000),
    gcGracePeriodSeconds: readInt(env, 'REGISTRY_GC_GRACE_PERIOD_SECONDS', 3600, 0, 30 * 24 * 3600),
    proxyMaxBytes:
      readOptionalString(env, 'REGISTRY_PROXY_MAX_BYTES') === undefined
        ? undefined
        : readInt(env, 'REGISTRY_PROXY_MAX_BYTES', 0, 1024 * 1024, Number.MAX_SAFE_INTEGER),
    registration: readRegistration(env),
    upstreams: resolveUpstreams(
      parseProxySpecs('REGISTRY_PROXY', readList(env, 'REGISTRY_PROXY', [])),
      readOptionalString(env, 'REGISTRY_PROXY_CONFIG'),
      {
        ttlSeconds: readInt(env, 'REGISTRY_PROXY_TTL_SECONDS', PROXY_DEFAULTS.ttlSeconds, 60, 31_536_000),
        maxStaleSeconds: readInt(
          env,
          'REGISTRY_PROXY_MAX_STALE_SECONDS',
          PROXY_DEFAULTS.maxStaleSeconds,
          0,
          31_536_000,
        ),
        upstreamTimeoutMs: readInt(
          env,
          'REGISTRY_PROXY_UPSTREAM_TIMEOUT_MS',
          PROXY_DEFAULTS.upstreamTimeoutMs,
          100,
          120_000,
        ),
      },
    ),
  });
}
