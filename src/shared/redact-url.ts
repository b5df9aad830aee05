/**
 * Query parameters whose values are secrets wherever they appear: `access_token` (OAuth bearer
 * in the query), `token`, `password`, and anything naming a secret, key, signature or
 * credential. Their values never reach a log line.
 */
const SECRET_PARAMETER = /token|passw|secret|key|sig|credential|auth|session/i;

/** `url` (a request target or absolute URL) with every secret query value replaced by `*****`. */
export function redactUrl(url: unknown): unknown {
  if (typeof url !== 'string') return url;
  const queryAt = url.indexOf('?');
  let redacted = url;
  if (queryAt >= 0) {
    const query = url
      .slice(queryAt + 1)
      .split('&')
      .map((pair) => {
        const equals = pair.indexOf('=');
        const name = equals < 0 ? pair : pair.slice(0, equals);
        let decoded = name;
        try {
          decoded = decodeURIComponent(name.replace(/\+/g, ' '));
        } catch {
          // an undecodable name is judged as written
        }
        return equals >= 0 && SECRET_PARAMETER.test(decoded) ? `${name}=*****` : pair;
      })
      .join('&');
    redacted = `${url.slice(0, queryAt)}?${query}`;
  }
  // user:password@ in an absolute URL
  return redacted.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@?#]*@/i, '$1*****@');
}
