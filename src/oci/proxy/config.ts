/**
 * Upstreams of the pull-through cache: which repository prefix maps to which upstream registry,
 * with what credentials and time limits. Two sources, merged once at start:
 *
 *   --proxy PREFIX=URL (repeatable) / REGISTRY_PROXY=prefix=url,...   the mapping
 *   --proxy-config FILE (YAML or JSON, `proxies: {<prefix>: {...}}`)  per-upstream settings
 *
 * The file's shape is the `proxies:` member of the registry auth config, so the two can merge.
 * Credentials are write-only: they are read here, used by the upstream client, and never logged,
 * serialized or sent anywhere but to the upstream's token/Basic endpoint.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../../shared/config/env.js';
import { SchemaSet, toSchemaIssues } from '../../shared/schemas.js';
import { NAME_PATTERN } from '../domain/names.js';

/** Time limits of one upstream. */
export interface UpstreamSettings {
  /** Cached content not pulled for this long is removed by `gc`. */
  readonly ttlSeconds: number;
  /** How old (since last confirmed upstream) a cached tag may be when served on upstream failure. */
  readonly maxStaleSeconds: number;
  /** Bound on each upstream round trip a client waits for (tag HEAD, manifest GET, blob headers). */
  readonly upstreamTimeoutMs: number;
}

/** `PREFIX=URL` as given on the command line or in REGISTRY_PROXY. */
export interface ProxySpec {
  readonly prefix: string;
  readonly url: string;
}

/** Username and password for the upstream; `toJSON`/`inspect` never show the password. */
export class UpstreamCredentials {
  readonly #password: string;
  constructor(
    readonly username: string,
    password: string,
  ) {
    this.#password = password;
  }
  /** The password, for the upstream client only. */
  reveal(): string {
    return this.#password;
  }
  toJSON(): string {
    return `${this.username}:<redacted>`;
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toJSON();
  }
}

/** One upstream as the cache uses it. */
export interface UpstreamConfig extends UpstreamSettings {
  /** Repository prefix, always ending in `/` (`mirror/`). */
  readonly prefix: string;
  /** Base URL without a trailing slash (`https://registry-1.docker.io`). */
  readonly url: string;
  /** Host of the URL (with port), matched against containerd's `?ns=`. */
  readonly host: string;
  readonly credentials: UpstreamCredentials | undefined;
}

export const PROXY_DEFAULTS: UpstreamSettings = Object.freeze({
  ttlSeconds: 7 * 24 * 3600,
  maxStaleSeconds: 7 * 24 * 3600,
  upstreamTimeoutMs: 2000,
});

function normalizePrefix(variable: string, prefix: string): string {
  const trimmed = prefix.trim().replace(/\/+$/, '');
  if (trimmed === '' || trimmed.length > 200 || !NAME_PATTERN.test(trimmed)) {
    throw new ConfigError(
      variable,
      `prefix "${prefix}" must be repository name components, e.g. mirror/ or hub/docker/`,
    );
  }
  return `${trimmed}/`;
}

function normalizeUrl(variable: string, url: string): { url: string; host: string } {
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    throw new ConfigError(variable, `upstream URL "${url}" is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new ConfigError(variable, `upstream URL "${url}" must be http or https`);
  if (parsed.username !== '' || parsed.password !== '' || parsed.search !== '' || parsed.hash !== '')
    throw new ConfigError(variable, 'upstream URL must not carry credentials, a query or a fragment');
  return { url: `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`, host: parsed.host };
}

/** Parses `prefix=url` entries (REGISTRY_PROXY is the comma-joined list). */
export function parseProxySpecs(variable: string, entries: readonly string[]): ProxySpec[] {
  return entries.map((entry) => {
    const separator = entry.indexOf('=');
    if (separator <= 0) throw new ConfigError(variable, `"${entry}" must be PREFIX=URL`);
    const prefix = normalizePrefix(variable, entry.slice(0, separator));
    return { prefix, url: normalizeUrl(variable, entry.slice(separator + 1)).url };
  });
}

interface FileUpstream {
  url?: string;
  username?: string;
  password?: string;
  password_file?: string;
  ttl_seconds?: number;
  max_stale_seconds?: number;
  upstream_timeout_ms?: number;
}

/** Reads and validates the proxy config file; unknown keys are refused. */
export function readProxyFile(variable: string, file: string): Record<string, FileUpstream> {
  let document: unknown;
  try {
    document = parseYaml(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigError(variable, `cannot be read: ${(error as Error).message.split('\n')[0]}`);
  }
  const validate = new SchemaSet().validator('registry-proxy-config.schema.json');
  if (!validate(document)) {
    const issue = toSchemaIssues(validate.errors)[0];
    throw new ConfigError(variable, `${file}: ${issue?.pointer || '/'} ${issue?.message ?? 'is invalid'}`);
  }
  const proxies = (document as { proxies: Record<string, FileUpstream> }).proxies;
  return Object.fromEntries(
    Object.entries(proxies).map(([prefix, value]) => [normalizePrefix(variable, prefix), value]),
  );
}

function readPassword(variable: string, upstream: FileUpstream): string | undefined {
  if (upstream.password !== undefined && upstream.password_file !== undefined)
    throw new ConfigError(variable, 'give password or password_file, not both');
  if (upstream.password_file === undefined) return upstream.password;
  try {
    return readFileSync(upstream.password_file, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new ConfigError(variable, `password_file cannot be read: ${(error as Error).message}`);
  }
}

/**
 * Merges flags and the file into the upstream list. A prefix in the file without a flag needs
 * its `url` there; a flag's URL wins over the file's. Prefixes may not nest (`a/` and `a/b/`):
 * every repository name must map to at most one upstream.
 */
export function resolveUpstreams(
  specs: readonly ProxySpec[],
  file: string | undefined,
  defaults: UpstreamSettings,
): UpstreamConfig[] {
  const variable = 'REGISTRY_PROXY_CONFIG';
  const settings = file === undefined ? {} : readProxyFile(variable, file);
  const urls = new Map<string, string>();
  for (const spec of specs) {
    if (urls.has(spec.prefix)) throw new ConfigError('REGISTRY_PROXY', `prefix ${spec.prefix} given twice`);
    urls.set(spec.prefix, spec.url);
  }
  for (const [prefix, upstream] of Object.entries(settings)) {
    if (urls.has(prefix) || upstream.url === undefined) continue;
    urls.set(prefix, normalizeUrl(variable, upstream.url).url);
  }
  for (const prefix of Object.keys(settings)) {
    if (!urls.has(prefix))
      throw new ConfigError(variable, `prefix ${prefix} has no url (in the file or with --proxy)`);
  }
  const upstreams = [...urls].map(([prefix, url]): UpstreamConfig => {
    const fromFile = settings[prefix] ?? {};
    const password = readPassword(variable, fromFile);
    return Object.freeze({
      prefix,
      url,
      host: new URL(url).host,
      credentials:
        fromFile.username === undefined || password === undefined
          ? undefined
          : new UpstreamCredentials(fromFile.username, password),
      ttlSeconds: fromFile.ttl_seconds ?? defaults.ttlSeconds,
      maxStaleSeconds: fromFile.max_stale_seconds ?? defaults.maxStaleSeconds,
      upstreamTimeoutMs: fromFile.upstream_timeout_ms ?? defaults.upstreamTimeoutMs,
    });
  });
  for (const a of upstreams) {
    for (const b of upstreams) {
      if (a !== b && b.prefix.startsWith(a.prefix))
        throw new ConfigError('REGISTRY_PROXY', `prefixes ${a.prefix} and ${b.prefix} overlap`);
    }
  }
  return upstreams;
}
