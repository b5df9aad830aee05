/**
 * The seam to the people's password file: token mode only needs "is this Authorization header a
 * valid user, and who". The htpasswd implementation lives in `http/htpasswd.ts`; its password
 * check (password-check.ts) runs bcrypt on worker threads and throttles failed logins per client
 * and per user, so the token endpoint gets the same protection as Basic auth on `/v2/`.
 */
import { Htpasswd } from './htpasswd.js';

/** Checks `Authorization: Basic ...` against the users; the user name when valid. */
export interface PasswordCheck {
  /**
   * `client` is the caller's address (failed logins are counted per client and per user);
   * throws `TOOMANYREQUESTS` (429 + `Retry-After`) once either budget is used up.
   */
  authenticate(authorization: string | undefined, client: string): Promise<string | undefined>;
  /** Stops the check's worker threads. */
  close(): Promise<void>;
}

/** Loads the users of an htpasswd file (throws when it cannot be read). */
export type PasswordCheckLoader = (path: string) => PasswordCheck;

export const loadHtpasswd: PasswordCheckLoader = (path) => Htpasswd.load(path);

/** No users at all (no `htpasswd` configured): only robots and anonymous callers. */
export const NO_USERS: PasswordCheck = { authenticate: async () => undefined, close: async () => {} };
