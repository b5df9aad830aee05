import type { parseChallenge } from './www-authenticate.js';
import type { ProbeTarget } from '../model.js';
import type { Answer } from './transport.js';

type Credentials = NonNullable<ProbeTarget['credentials']>;

/** `Basic <base64>` of the username and password, when there are any. */
export function basicAuthorization(credentials: Credentials | undefined): string | undefined {
  return credentials && (credentials.username !== undefined || credentials.password !== undefined)
    ? `Basic ${Buffer.from(`${credentials.username ?? ''}:${credentials.password ?? ''}`).toString('base64')}`
    : undefined;
}

/**
 * The Bearer token flow against a challenge's realm (the stored token itself when there is no
 * username/password). A string is the token, false a refusal of the credentials, null anything
 * else (no realm, an odd answer). `scope` is sent when given (the crawler's catalog/pull scopes).
 */
export async function bearerToken(
  challenge: ReturnType<typeof parseChallenge> & object,
  credentials: Credentials | undefined,
  request: (url: URL, headers?: Record<string, string>) => Promise<Answer>,
  scope?: string,
): Promise<string | false | null> {
  const basic = basicAuthorization(credentials);
  if (!basic && credentials?.token) return credentials.token;
  const realm = challenge.params.realm;
  if (!realm) return null;
  let tokenUrl: URL;
  try {
    tokenUrl = new URL(realm);
  } catch {
    return null;
  }
  if (tokenUrl.protocol !== 'https:' && tokenUrl.protocol !== 'http:') return null;
  if (challenge.params.service) tokenUrl.searchParams.set('service', challenge.params.service);
  if (scope) tokenUrl.searchParams.set('scope', scope);
  const answer = await request(tokenUrl, basic ? { authorization: basic } : {});
  if (answer.status === 401 || answer.status === 403) return false;
  if (answer.status !== 200) return null;
  let body: { token?: unknown; access_token?: unknown };
  try {
    body = JSON.parse(answer.body) as typeof body;
  } catch {
    return null;
  }
  const issued = typeof body?.token === 'string' ? body.token : body?.access_token;
  return typeof issued === 'string' ? issued : null;
}

/**
 * Logs in the way docker does: Basic on /v2/, or the Bearer token flow against the challenge's
 * realm. True when the registry then answers 200, false when it refuses the credentials.
 */
export async function login(
  registryUrl: URL,
  challenge: ReturnType<typeof parseChallenge> & object,
  credentials: Credentials,
  request: (url: URL, headers?: Record<string, string>) => Promise<Answer>,
): Promise<boolean | null> {
  const basic = basicAuthorization(credentials);
  const scheme = challenge.scheme.toLowerCase();
  if (scheme === 'basic') {
    if (!basic) return null;
    const retry = await request(registryUrl, { authorization: basic });
    return retry.status === 200 ? true : retry.status === 401 || retry.status === 403 ? false : null;
  }
  if (scheme !== 'bearer') return null;
  const token = await bearerToken(challenge, credentials, request);
  if (typeof token !== 'string') return token;
  const retry = await request(registryUrl, { authorization: `Bearer ${token}` });
  return retry.status === 200 ? true : retry.status === 401 || retry.status === 403 ? false : null;
}
