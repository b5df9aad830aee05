import { readFileSync } from 'node:fs';
import { isLoopbackHost } from '../shared/loopback.js';
import { ClientError } from './errors.js';

/** The environment variables the client commands read (flags win over them). */
export const CLIENT_ENV_VARS = [
  'AIOS_CATALOG_URL',
  'AIOS_CATALOG_TOKEN',
  'AIOS_CATALOG_TOKEN_FILE',
  'AIOS_CATALOG_TIMEOUT_MS',
] as const;

export const DEFAULT_CATALOG_URL = 'http://127.0.0.1:8080';
const DEFAULT_TIMEOUT_MS = 30_000;

/** How to reach the catalog, resolved once per command from flags and the environment. */
export interface ClientConfig {
  /** The catalog's base URL without a trailing slash (a path prefix is kept: a catalog behind a proxy). */
  readonly baseUrl: string;
  /** The API token, never printed (errors name only where it came from). */
  readonly token: string | undefined;
  /** Longest wait for one answer, in milliseconds. */
  readonly timeoutMs: number;
  /** One line for stderr when the token would cross the network in clear; undefined otherwise. */
  readonly warning: string | undefined;
}

/** The connection flags every client command takes. */
export interface ConnectionFlags {
  url?: string;
  token?: string;
  tokenFile?: string;
  timeout?: string;
}

/** Resolves the connection from flags, then `AIOS_CATALOG_*` variables, then defaults; bad values are usage errors. */
export function resolveClientConfig(
  flags: ConnectionFlags,
  env: Readonly<Record<string, string | undefined>>,
): ClientConfig {
  const baseUrl = parseCatalogUrl(flags.url ?? env.AIOS_CATALOG_URL ?? DEFAULT_CATALOG_URL);
  const token = readToken(flags, env);
  const timeoutMs = parseTimeout(flags.timeout ?? env.AIOS_CATALOG_TIMEOUT_MS);
  const { protocol, hostname } = new URL(baseUrl);
  const warning =
    token !== undefined && protocol === 'http:' && !isLoopbackHost(hostname)
      ? `warning: the token is sent in clear over http:// to ${hostname}; use https:// beyond this machine`
      : undefined;
  return { baseUrl, token, timeoutMs, warning };
}

/** An http(s) URL with a host and no credentials, query or fragment (they would be sent, or silently dropped). */
export function parseCatalogUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ClientError('usage', `--url is not a URL: ${JSON.stringify(raw.slice(0, 200))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ClientError('usage', `--url must be http:// or https://, got ${url.protocol}`);
  // Credentials in the URL would end up in shell history and error messages: the token has its own flags.
  if (url.username !== '' || url.password !== '')
    throw new ClientError(
      'usage',
      '--url must not carry credentials; use --token-file or AIOS_CATALOG_TOKEN',
    );
  if (url.search !== '' || url.hash !== '')
    throw new ClientError('usage', '--url must not have a query or fragment');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

function readToken(
  flags: ConnectionFlags,
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  if (flags.token !== undefined) return checkToken(flags.token, '--token');
  const file =
    flags.tokenFile ?? (env.AIOS_CATALOG_TOKEN === undefined ? env.AIOS_CATALOG_TOKEN_FILE : undefined);
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ClientError(
        'usage',
        `cannot read the token file ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
    return checkToken(text.trim(), `the token file ${file}`);
  }
  if (env.AIOS_CATALOG_TOKEN !== undefined && env.AIOS_CATALOG_TOKEN !== '')
    return checkToken(env.AIOS_CATALOG_TOKEN, 'AIOS_CATALOG_TOKEN');
  return undefined;
}

/** A token must fit in a header; the message names where it came from, never the token. */
function checkToken(token: string, source: string): string {
  if (token === '' || !/^[\x21-\x7e]+$/.test(token))
    throw new ClientError('usage', `${source} is empty or has characters a token cannot have`);
  return token;
}

function parseTimeout(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_TIMEOUT_MS;
  if (!/^\d{1,7}$/.test(raw) || Number(raw) < 1)
    throw new ClientError(
      'usage',
      `--timeout must be milliseconds from 1 to 9999999, got ${JSON.stringify(raw)}`,
    );
  return Number(raw);
}
