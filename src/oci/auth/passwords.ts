/**
 * The seam to the people's password file: token mode only needs "is this Authorization header a
 * valid user, and who". The htpasswd implementation lives in `http/htpasswd.ts` (and may move
 * its bcrypt work off the event loop without this module changing).
 */
import { Htpasswd } from '../http/htpasswd.js';

/** Checks `Authorization: Basic ...` against the users; the user name when valid. */
export interface PasswordCheck {
  authenticate(authorization: string | undefined): Promise<string | undefined>;
}

/** Loads the users of an htpasswd file (throws when it cannot be read). */
export type PasswordCheckLoader = (path: string) => PasswordCheck;

export const loadHtpasswd: PasswordCheckLoader = (path) => Htpasswd.load(path);

/** No users at all (no `htpasswd` configured): only robots and anonymous callers. */
export const NO_USERS: PasswordCheck = { authenticate: async () => undefined };
