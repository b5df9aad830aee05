import { readFileSync } from 'node:fs';
import { ConfigError, readInt, readList, readOptionalString, type Env } from '../../shared/config/env.js';

/** Self-registration with a catalog (DESIGN.md section 12): `registry --register-with URL ...`. */
export interface RegistrationConfig {
  /** The catalog's base URL (`--register-with`, `REGISTRY_REGISTER_WITH`). */
  readonly catalogUrl: string;
  /** The catalog API token (read once from `--register-token-file`); undefined: the catalog has none. */
  readonly token: string | undefined;
  /** The URL clients reach this registry at, stored as the entry's public URL (`--public-url`). */
  readonly publicUrl: string;
  /** The entry's name (`--register-name`); default: the public URL's host. */
  readonly name: string;
  /** The entry's tags (`--register-tags a,b`). */
  readonly tags: readonly string[];
  /** Seconds between heartbeats (`REGISTER_HEARTBEAT_S`, default 30), jittered by up to 10 %. */
  readonly heartbeatSeconds: number;
  /** Push/delete events held while the catalog is away; beyond, the oldest are dropped. */
  readonly eventQueueSize: number;
}

export const REGISTRATION_ENV_VARS = [
  'REGISTRY_REGISTER_WITH',
  'REGISTRY_REGISTER_TOKEN_FILE',
  'REGISTRY_PUBLIC_URL',
  'REGISTRY_REGISTER_NAME',
  'REGISTRY_REGISTER_TAGS',
  'REGISTER_HEARTBEAT_S',
  'REGISTRY_EVENT_QUEUE_SIZE',
] as const;

export function readRegistration(env: Env): RegistrationConfig | undefined {
  const catalogUrl = readOptionalString(env, 'REGISTRY_REGISTER_WITH');
  if (catalogUrl === undefined) return undefined;
  checkHttpUrl('REGISTRY_REGISTER_WITH', catalogUrl);
  const publicUrl = readOptionalString(env, 'REGISTRY_PUBLIC_URL');
  if (publicUrl === undefined)
    throw new ConfigError(
      'REGISTRY_PUBLIC_URL',
      'is required with --register-with (the URL clients pull from)',
    );
  checkHttpUrl('REGISTRY_PUBLIC_URL', publicUrl);
  const tokenFile = readOptionalString(env, 'REGISTRY_REGISTER_TOKEN_FILE');
  let token: string | undefined;
  if (tokenFile !== undefined) {
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (error) {
      throw new ConfigError('REGISTRY_REGISTER_TOKEN_FILE', `cannot be read: ${(error as Error).message}`);
    }
    if (!/^\S+$/.test(token)) throw new ConfigError('REGISTRY_REGISTER_TOKEN_FILE', 'must hold one token');
  }
  const seconds = Number(env.REGISTER_HEARTBEAT_S ?? '30');
  if (!Number.isFinite(seconds) || seconds < 0.05 || seconds > 3600)
    throw new ConfigError(
      'REGISTER_HEARTBEAT_S',
      `must be a number of seconds from 0.05 to 3600, got "${env.REGISTER_HEARTBEAT_S}"`,
    );
  return Object.freeze({
    catalogUrl: catalogUrl.replace(/\/+$/, ''),
    token,
    publicUrl: publicUrl.replace(/\/+$/, ''),
    name: readOptionalString(env, 'REGISTRY_REGISTER_NAME') ?? new URL(publicUrl).host,
    tags: readList(env, 'REGISTRY_REGISTER_TAGS', []),
    heartbeatSeconds: seconds,
    eventQueueSize: readInt(env, 'REGISTRY_EVENT_QUEUE_SIZE', 10_000, 1, 1_000_000),
  });
}

function checkHttpUrl(name: string, value: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(name, `is not a URL: "${value}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ConfigError(name, `must be an http:// or https:// URL, got "${value}"`);
}
