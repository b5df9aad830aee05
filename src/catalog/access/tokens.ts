import { createHash, randomBytes } from 'node:crypto';

/**
 * API bearer tokens. The server only ever holds SHA-256 digests: a token is 32 random bytes, so
 * a fast hash is as hard to reverse as a slow one, and it keeps the check to one hash and one
 * map lookup per request (bcrypt would cost ~50 ms each). Tokens are never logged.
 */

export const ROLES = ['read', 'register', 'write', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/**
 * What a request needs: `read` < `register` < `write` < `admin`; each role includes the ones
 * before it. `register` is for bundled registries that register themselves: it reads, and may
 * register, heartbeat and post events only for the entry it registered first (domain/heartbeats.ts
 * binds the entry to the token's name); it cannot create, change or delete entries otherwise.
 */
export function roleAllows(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

export interface TokenEntry {
  readonly name: string;
  readonly role: Role;
  /** Hex SHA-256 of the whole token string. */
  readonly sha256: string;
  readonly expiresAt: Date | undefined;
}

/** One entry as configured: `<name>:<role>:<sha256 hex>[:<expiry, ISO 8601>]`. */
const ENTRY = /^([\w.-]{1,64}):([a-z]+):([0-9a-f]{64})(?::(.+))?$/;

/**
 * Parses the token list (`API_TOKENS`, or the file `API_TOKENS_FILE` names): one entry per line
 * or comma-separated; blank lines and `#` comments ignored. Throws one readable sentence.
 */
export function parseTokenEntries(text: string): TokenEntry[] {
  const entries = text
    .split(/[,\n]/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line, index) => {
      const match = ENTRY.exec(line);
      if (!match) {
        throw new Error(
          `entry ${index + 1} is not <name>:<role>:<sha256 hex>[:<expiry>] (make one with: aios-registry-catalog token create)`,
        );
      }
      const [, name, role, sha256, expiry] = match as unknown as [string, string, string, string, string?];
      if (!(ROLES as readonly string[]).includes(role))
        throw new Error(`entry ${name} has role "${role}" (one of ${ROLES.join(', ')})`);
      const expiresAt = expiry === undefined ? undefined : new Date(expiry);
      if (expiresAt !== undefined && Number.isNaN(expiresAt.getTime()))
        throw new Error(`entry ${name} has an expiry that is not an ISO 8601 date: "${expiry}"`);
      return { name, role: role as Role, sha256, expiresAt };
    });
  const names = new Set(entries.map(({ name }) => name));
  if (names.size !== entries.length) throw new Error('the same token name is listed twice');
  return entries;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** A new token and the configuration entry that admits it. */
export function createToken(name: string, role: Role, expiresAt?: Date): { token: string; entry: string } {
  if (!/^[\w.-]{1,64}$/.test(name)) throw new Error('a token name is 1-64 letters, digits, ".", "_" or "-"');
  const token = `aios_${randomBytes(32).toString('base64url')}`;
  const expiry = expiresAt ? `:${expiresAt.toISOString()}` : '';
  const entry = `${name}:${role}:${hashToken(token)}${expiry}`;
  return { token, entry };
}

export type TokenCheck =
  | { readonly ok: true; readonly name: string; readonly role: Role }
  | { readonly ok: false; readonly reason: 'unknown' | 'expired' };

/** The configured tokens, looked up by digest. */
export class TokenSet {
  private readonly byHash: ReadonlyMap<string, TokenEntry>;

  constructor(entries: readonly TokenEntry[]) {
    this.byHash = new Map(entries.map((entry) => [entry.sha256, entry]));
  }

  get size(): number {
    return this.byHash.size;
  }

  /**
   * Tokens already seen to match an entry, so a known client's request skips the SHA-256 (issue
   * 12: a tenth of the fast read). Only matches are kept, so it holds at most one string per
   * configured token and an attacker's guesses cannot grow it; a new set (reload) starts empty.
   */
  private readonly known = new Map<string, TokenEntry>();

  check(token: string, now = Date.now()): TokenCheck {
    let entry = this.known.get(token);
    if (!entry) {
      entry = this.byHash.get(hashToken(token));
      if (!entry) return { ok: false, reason: 'unknown' };
      this.known.set(token, entry);
    }
    if (entry.expiresAt && entry.expiresAt.getTime() <= now) return { ok: false, reason: 'expired' };
    return { ok: true, name: entry.name, role: entry.role };
  }
}
