/**
 * What token mode keeps in the storage root, beside the content (`storage/layout.ts`), through the
 * same storage driver, so every replica of a registry sees the same keys and robots:
 *
 *   <root>/_auth/
 *     token-key.pem           the signing key generated when none is configured (EC P-256, PKCS#8)
 *     certs/cert-<kid>.pem       the self-signed certificate of each key (its `x5c`, and what a
 *                             Distribution's `rootcertbundle` is given); generated once per key
 *     keys.json               the public part of the active key, and of keys replaced by a
 *                             rotation: still verified (and listed at /auth/jwks.json) until the
 *                             tokens they signed have expired
 *     robots.json             robot accounts: name, prefix, actions, expiry, SHA-256 of the secret
 *     robots-last-used.json   when each robot last obtained a token (written by the server only)
 */
export const AUTH_DIR = '_auth';
export const GENERATED_KEY_PATH = `${AUTH_DIR}/token-key.pem`;
export const certificatePath = (kid: string): string => `${AUTH_DIR}/certs/cert-${kid}.pem`;
export const KEYS_PATH = `${AUTH_DIR}/keys.json`;
export const ROBOTS_PATH = `${AUTH_DIR}/robots.json`;
export const ROBOTS_LAST_USED_PATH = `${AUTH_DIR}/robots-last-used.json`;
