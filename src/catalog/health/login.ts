import type { parseChallenge } from './www-authenticate.js';
import type { ProbeTarget } from '../model.js';
import type { Answer } from './transport.js';

/**
 * Logs in the way docker does: Basic on /v2/, or the Bearer token flow against the challenge's
 * realm. True when the registry then answers 200, false when it refuses the credentials.
 */
export async function login(
  registryUrl: URL,
  challenge: ReturnType<typeof parseChallenge> & object,
  credentials: NonNullable<ProbeTarget['credentials']>,
  request: (url: URL, headers?: Record<string, string>) => Promise<Answer>,
): Promise<boolean | null> {
  const basic =
    credentials.username !== undefined || credentials.password !== undefined
      ? `Basic ${Buffer.from(`${credentials.username ?? ''}:${credentials.password ?? ''}`).toString('base64')}`
      : undefined;
  const scheme = challenge.scheme.toLowerCase();
  if (scheme === 'basic') {
    if (!basic) return null;
    const retry = await request(registryUrl, { authorization: basic });
    return retry.status === 200 ? true : retry.status === 401 || retry.status === 403 ? false : null;
  }
  if (scheme !== 'bearer') return null;
  let token = credentials.token;
  if (basic || !token) {
    const realm = challenge.params.realm;
    if (!realm) return null;
    const tokenUrl = new URL(realm);
    if (tokenUrl.protocol !== 'https:' && tokenUrl.protocol !== 'http:') return null;
    if (challenge.params.service) tokenUrl.searchParams.set('service', challenge.params.service);
    const answer = await request(tokenUrl, basic ? { authorization: basic } : {});
    if (answer.status === 401 || answer.status === 403) return false;
    if (answer.status !== 200) return null;
    const body = JSON.parse(answer.body) as { token?: unknown; access_token?: unknown };
    const issued = typeof body.token === 'string' ? body.token : body.access_token;
    if (typeof issued !== 'string') return null;
    token = issued;
  }
  const retry = await request(registryUrl, { authorization: `Bearer ${token}` });
  return retry.status === 200 ? true : retry.status === 401 || retry.status === 403 ? false : null;
}
