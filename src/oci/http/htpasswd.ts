/**
 * Basic authentication against an Apache htpasswd file, as CNCF Distribution's `htpasswd` auth:
 * bcrypt entries (`$2y$`, `$2a$`, `$2b$`), plus `{SHA}` for old files. bcrypt is slow on purpose,
 * so a successful check is remembered (keyed by a hash of the credentials, bounded).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import bcrypt from 'bcryptjs';

const CACHE_LIMIT = 1024;

export class Htpasswd {
  private readonly verified = new Set<string>();

  constructor(private readonly entries: ReadonlyMap<string, string>) {}

  /** Parses the file once at start; unknown hash formats are kept and never match. */
  static load(path: string): Htpasswd {
    const entries = new Map<string, string>();
    for (const line of readFileSync(path, 'utf8').split(/\r?\n/)) {
      const trimmed = line.trim();
      if (trimmed === '' || trimmed.startsWith('#')) continue;
      const separator = trimmed.indexOf(':');
      if (separator > 0) entries.set(trimmed.slice(0, separator), trimmed.slice(separator + 1));
    }
    return new Htpasswd(entries);
  }

  /** Checks an `Authorization` header value; returns the user name when it is valid. */
  async authenticate(authorization: string | undefined): Promise<string | undefined> {
    if (authorization === undefined || !/^basic /i.test(authorization)) return undefined;
    const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
    const separator = decoded.indexOf(':');
    if (separator < 0) return undefined;
    const user = decoded.slice(0, separator);
    const password = decoded.slice(separator + 1);
    const stored = this.entries.get(user);
    if (stored === undefined) return undefined;
    const key = createHash('sha256').update(`${user}\0${password}\0${stored}`).digest('hex');
    if (this.verified.has(key)) return user;
    if (!(await verify(password, stored))) return undefined;
    if (this.verified.size >= CACHE_LIMIT) this.verified.clear();
    this.verified.add(key);
    return user;
  }
}

async function verify(password: string, stored: string): Promise<boolean> {
  if (/^\$2[aby]\$/.test(stored)) return bcrypt.compare(password, stored.replace(/^\$2y\$/, '$2b$'));
  if (stored.startsWith('{SHA}')) {
    const expected = Buffer.from(stored.slice(5), 'base64');
    const actual = createHash('sha1').update(password).digest();
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  }
  return false;
}
