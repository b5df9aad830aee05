/**
 * The token signing keys. One active EC P-256 key signs; keys it replaced stay trusted for
 * verification (and listed at `/auth/jwks.json`) until every token they signed has expired, so a
 * rotation never cuts off a client mid-push. Robot secrets are unrelated to these keys: rotating
 * one never touches the other.
 *
 * The key is `signing_key_file` when configured (rotate by replacing the file and reloading), or
 * else generated once into the storage root (rotate with `registry token-key rotate`). Each key's
 * id is its RFC 7638 JWK thumbprint: a standard, so no verifier has to copy our format
 * (distribution#4533 broke on a changed libtrust key-id format).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { ConfigError } from '../../shared/config/env.js';
import type { StorageDriver } from '../storage/driver.js';
import { AUTH_CONFIG_VARIABLE } from './auth-config.js';
import { GENERATED_KEY_PATH, KEYS_PATH, certificatePath } from './auth-layout.js';
import { pemToDerBase64, selfSignedCertificate } from './certificate.js';

/** A public key the registry accepts tokens from. */
export interface VerificationKey {
  readonly kid: string;
  readonly publicKey: KeyObject;
  readonly jwk: JWK;
  readonly certificatePem: string;
  /** When it stopped signing (ms); undefined for the active key. */
  readonly retiredAt?: number;
}

/** The key that signs, with its certificate as `x5c` wants it. */
export interface SigningKey extends VerificationKey {
  readonly privateKey: KeyObject;
  readonly x5c: string;
}

interface StoredKey {
  readonly kid: string;
  readonly jwk: JWK;
  readonly certificatePem: string;
  readonly retiredAt?: number;
}

interface KeysFile {
  readonly active: StoredKey;
  readonly retired: StoredKey[];
}

/** Where the private key comes from. */
export interface KeySource {
  readonly signingKeyFile: string | undefined;
  /** Tokens live this long: a retired key is kept that long after its retirement (plus a margin). */
  readonly tokenTtlSeconds: number;
  /** The certificate's subject (the service). */
  readonly subject: string;
}

const RETIREMENT_MARGIN_MS = 60_000;

export class KeyRing {
  private constructor(
    readonly active: SigningKey,
    readonly retired: readonly VerificationKey[],
    /** Modification time of the private key's source, to notice a rotation. */
    readonly sourceMtimeMs: number,
  ) {}

  /** The key with id `kid`, when it may still verify tokens. */
  find(kid: string | undefined): VerificationKey | undefined {
    if (kid === this.active.kid) return this.active;
    return this.retired.find((key) => key.kid === kid);
  }

  /** `/auth/jwks.json`: every key that may verify, active first. */
  jwks(): { keys: JWK[] } {
    return {
      keys: [this.active, ...this.retired].map((key) => ({
        ...key.jwk,
        kid: key.kid,
        use: 'sig',
        alg: 'ES256',
        x5c: [pemToDerBase64(key.certificatePem)],
      })),
    };
  }

  /** Every certificate, for a verifier's root bundle (PEM, active first). */
  certificates(): string {
    return [this.active, ...this.retired].map((key) => key.certificatePem.trim()).join('\n') + '\n';
  }

  /**
   * Loads the active key (generating it once when none is configured), its certificate, and the
   * retired keys still in their overlap; records a changed active key as retired.
   */
  static async load(driver: StorageDriver, source: KeySource, now: number): Promise<KeyRing> {
    const { pem, mtimeMs } = await readPrivateKey(driver, source.signingKeyFile);
    const privateKey = parsePrivateKey(pem, source.signingKeyFile);
    const publicKey = createPublicKey(privateKey);
    const jwk = publicKey.export({ format: 'jwk' }) as JWK;
    const kid = await calculateJwkThumbprint(jwk, 'sha256');
    const certificatePem = await loadCertificate(driver, privateKey, kid, source.subject, now);

    const stored = await readKeysFile(driver);
    const keep = (key: StoredKey) =>
      key.kid !== kid && (key.retiredAt ?? now) + source.tokenTtlSeconds * 1000 + RETIREMENT_MARGIN_MS > now;
    const retired = (stored?.retired ?? []).filter(keep);
    if (stored !== undefined && stored.active.kid !== kid)
      retired.unshift({ ...stored.active, retiredAt: now });
    const file: KeysFile = { active: { kid, jwk, certificatePem }, retired };
    if (JSON.stringify(file) !== JSON.stringify(stored))
      await driver.writeFile(KEYS_PATH, JSON.stringify(file, null, 2));

    const active: SigningKey = {
      kid,
      jwk,
      certificatePem,
      publicKey,
      privateKey,
      x5c: pemToDerBase64(certificatePem),
    };
    return new KeyRing(
      active,
      retired.map((key) => ({ ...key, publicKey: createPublicKey({ key: key.jwk, format: 'jwk' }) })),
      mtimeMs,
    );
  }

  /** Modification time of the private key's source now (to decide whether to reload). */
  static async sourceMtime(driver: StorageDriver, signingKeyFile: string | undefined): Promise<number> {
    if (signingKeyFile !== undefined) {
      try {
        return statSync(signingKeyFile).mtimeMs;
      } catch {
        return -1;
      }
    }
    return (await driver.stat(GENERATED_KEY_PATH))?.mtimeMs ?? -1;
  }

  /**
   * Replaces the generated key with a new one (`registry token-key rotate`); the old one stays
   * trusted until its tokens expire. Refused when the key is configured (replace that file).
   */
  static async rotateGenerated(driver: StorageDriver, source: KeySource, now: number): Promise<KeyRing> {
    if (source.signingKeyFile !== undefined)
      throw new ConfigError(
        AUTH_CONFIG_VARIABLE,
        `sets signing_key_file (${source.signingKeyFile}): rotate by replacing that file and reloading`,
      );
    await KeyRing.load(driver, source, now);
    await driver.writeFile(GENERATED_KEY_PATH, generatePem());
    return KeyRing.load(driver, source, now);
  }
}

function generatePem(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

async function readPrivateKey(
  driver: StorageDriver,
  file: string | undefined,
): Promise<{ pem: string; mtimeMs: number }> {
  if (file !== undefined) {
    try {
      return { pem: readFileSync(file, 'utf8'), mtimeMs: statSync(file).mtimeMs };
    } catch (error) {
      throw new ConfigError(
        AUTH_CONFIG_VARIABLE,
        `signing_key_file cannot be read: ${(error as Error).message}`,
      );
    }
  }
  let stored = await driver.readFile(GENERATED_KEY_PATH);
  if (stored === undefined) {
    await driver.writeFile(GENERATED_KEY_PATH, generatePem());
    // Two replicas starting at once may both write: use whichever landed.
    stored = await driver.readFile(GENERATED_KEY_PATH);
  }
  return {
    pem: stored!.toString('utf8'),
    mtimeMs: (await driver.stat(GENERATED_KEY_PATH))?.mtimeMs ?? -1,
  };
}

function parsePrivateKey(pem: string, file: string | undefined): KeyObject {
  const where = file === undefined ? `the generated key ${GENERATED_KEY_PATH}` : `signing_key_file ${file}`;
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (error) {
    throw new ConfigError(
      AUTH_CONFIG_VARIABLE,
      `${where} is not a PEM private key: ${(error as Error).message}`,
    );
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new ConfigError(AUTH_CONFIG_VARIABLE, `${where} must be an EC P-256 key (ES256)`);
  return key;
}

async function loadCertificate(
  driver: StorageDriver,
  privateKey: KeyObject,
  kid: string,
  subject: string,
  now: number,
): Promise<string> {
  const stored = await driver.readFile(certificatePath(kid));
  if (stored !== undefined) return stored.toString('utf8');
  await driver.writeFile(certificatePath(kid), await selfSignedCertificate(privateKey, subject, now));
  return (await driver.readFile(certificatePath(kid)))!.toString('utf8');
}

async function readKeysFile(driver: StorageDriver): Promise<KeysFile | undefined> {
  const raw = await driver.readFile(KEYS_PATH);
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw.toString('utf8')) as KeysFile;
  } catch {
    return undefined;
  }
}
