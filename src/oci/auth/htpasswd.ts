/**
 * Basic authentication against an Apache htpasswd file, as CNCF Distribution's `htpasswd` auth:
 * bcrypt entries (`$2y$`, `$2a$`, `$2b$`), plus `{SHA}` for old files. The password check itself
 * (worker threads, equal cost for unknown users, a short success cache) and the throttling of
 * failed logins live in password-check.ts.
 */
import { readFileSync } from 'node:fs';
import { OciError } from '../errors.js';
import {
  BcryptPool,
  DEFAULT_LOGIN_LIMITS,
  HtpasswdCheck,
  LoginThrottle,
  type LoginLimits,
} from './password-check.js';

export class Htpasswd {
  private readonly pool = new BcryptPool();
  private readonly check: HtpasswdCheck;
  private readonly throttle: LoginThrottle;

  constructor(entries: ReadonlyMap<string, string>, limits: LoginLimits = DEFAULT_LOGIN_LIMITS) {
    this.check = new HtpasswdCheck(entries, this.pool);
    this.throttle = new LoginThrottle(limits);
  }

  /** Parses the file once at start; unknown hash formats are kept and never match. */
  static load(path: string, limits?: LoginLimits): Htpasswd {
    const entries = new Map<string, string>();
    for (const line of readFileSync(path, 'utf8').split(/\r?\n/)) {
      const trimmed = line.trim();
      if (trimmed === '' || trimmed.startsWith('#')) continue;
      const separator = trimmed.indexOf(':');
      if (separator > 0) entries.set(trimmed.slice(0, separator), trimmed.slice(separator + 1));
    }
    return new Htpasswd(entries, limits);
  }

  /**
   * Checks an `Authorization` header value from `client` (its address); returns the user name
   * when it is valid, undefined when not. Throws `TOOMANYREQUESTS` (429 + `Retry-After`) once
   * the client or the user has used up its failed logins.
   */
  async authenticate(authorization: string | undefined, client: string): Promise<string | undefined> {
    const credentials = parseBasic(authorization);
    const knownGood =
      credentials !== undefined && this.check.knownGood(credentials.user, credentials.password);
    const wait = await this.throttle.blocked(client, credentials?.user, knownGood);
    if (wait > 0)
      throw new OciError('TooManyRequests', 'too many failed logins; retry later', undefined, {
        'Retry-After': String(wait),
      });
    if (credentials === undefined) {
      // No credentials at all is how clients discover that auth is needed: not a failure.
      if (authorization !== undefined) await this.throttle.failed(client, undefined);
      return undefined;
    }
    if (await this.check.verify(credentials.user, credentials.password)) return credentials.user;
    await this.throttle.failed(client, credentials.user);
    return undefined;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

function parseBasic(authorization: string | undefined): { user: string; password: string } | undefined {
  if (authorization === undefined || !/^basic /i.test(authorization)) return undefined;
  const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
  const separator = decoded.indexOf(':');
  if (separator < 0) return undefined;
  return { user: decoded.slice(0, separator), password: decoded.slice(separator + 1) };
}
