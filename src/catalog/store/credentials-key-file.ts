/**
 * The credentials key the embedded store generates for itself, so `npm ci && npm start` can store
 * registry credentials without the user first learning about CREDENTIALS_KEYS. It lives in the
 * data directory beside the database: whoever backs up or moves the data directory must take this
 * file along, or the stored credentials no longer open. MongoDB deployments never use it (their
 * replicas must share one key, so it has to be configured).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseCredentialKeys, type CredentialKey } from '../config.js';
import type { Logger } from '../../shared/logger.js';

/** The id of the generated key inside sealed values (`aes256gcm:generated:...`). */
export const GENERATED_KEY_ID = 'generated';

/** Where the embedded store's generated credentials key lives; backups must include this file. */
export function credentialsKeyPath(dataDir: string): string {
  return path.join(dataDir, 'credentials-key');
}

/**
 * Reads the data directory's key, creating it (32 random bytes, mode 0600, written once with
 * O_EXCL so two starts cannot write different keys) when there is none yet. The file holds one
 * `generated:<base64>` line, the CREDENTIALS_KEYS format, so it can be pasted there later.
 */
export function loadOrCreateCredentialsKey(dataDir: string, logger: Logger): CredentialKey {
  const file = credentialsKeyPath(dataDir);
  try {
    writeFileSync(file, `${GENERATED_KEY_ID}:${randomBytes(32).toString('base64')}\n`, {
      flag: 'wx',
      mode: 0o600,
    });
    logger.warn(
      { file },
      'generated a credentials key for the embedded store (mode 0600); back it up with the data directory, without it stored credentials cannot be read',
    );
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    if ((statSync(file).mode & 0o077) !== 0)
      logger.warn({ file }, 'the credentials key file is readable by other users: chmod 600 it');
  }
  const keys = parseCredentialKeys(readFileSync(file, 'utf8'), file);
  if (keys.length !== 1) throw new Error(`${file} must hold exactly one key`);
  return keys[0]!;
}

/**
 * The keys credentials are sealed and opened with. Configured keys come first (the first seals);
 * on the embedded store without configured keys, the generated key (created on first use); on the
 * embedded store with configured keys, the generated key is kept as an opening key so values it
 * sealed still open and `rotate-credentials` can move them to the configured key. MongoDB: the
 * configured keys only.
 */
export function credentialKeysFor(
  config: {
    readonly credentialKeys: readonly CredentialKey[];
    readonly mongodbUri?: string;
    readonly dataDir: string;
  },
  logger: Logger,
): CredentialKey[] {
  if (config.mongodbUri !== undefined) return [...config.credentialKeys];
  if (config.credentialKeys.length === 0) return [loadOrCreateCredentialsKey(config.dataDir, logger)];
  if (!existsSync(credentialsKeyPath(config.dataDir))) return [...config.credentialKeys];
  const generated = loadOrCreateCredentialsKey(config.dataDir, logger);
  return config.credentialKeys.some(({ id }) => id === generated.id)
    ? [...config.credentialKeys]
    : [...config.credentialKeys, generated];
}
