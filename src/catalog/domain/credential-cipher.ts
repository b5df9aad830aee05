import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { CredentialKey } from '../config.js';

/**
 * Encryption at rest of `container_registry_config.credentials` (AES-256-GCM). A sealed value is
 * a string `aes256gcm:<keyId>:<iv>:<ciphertext>:<tag>` (base64url parts); the key id lets old
 * values be read after a new key becomes current. The registry id and field name are bound as
 * additional data, so a sealed value copied into another entry or field does not open.
 */

export const SEALED_PREFIX = 'aes256gcm:';

export type { CredentialKey };

export class CredentialCipher {
  private readonly keys: ReadonlyMap<string, Buffer>;

  /** `keys[0]` seals; every key opens values sealed with its id. */
  constructor(private readonly sealingKeys: readonly CredentialKey[]) {
    if (sealingKeys.length === 0) throw new Error('CredentialCipher needs at least one key');
    this.keys = new Map(sealingKeys.map(({ id, key }) => [id, key]));
  }

  get currentKeyId(): string {
    return this.sealingKeys[0]!.id;
  }

  seal(value: string, registryId: string, field: string): string {
    const { id, key } = this.sealingKeys[0]!;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(`${registryId}\0${field}`));
    const ciphertext = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return [SEALED_PREFIX + id, iv, ciphertext, cipher.getAuthTag()]
      .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
      .join(':');
  }

  /** Returns the plain value, or throws when the key is unknown or the value was tampered with. */
  open(sealed: string, registryId: string, field: string): string {
    const [scheme, id, iv, ciphertext, tag] = sealed.split(':');
    const key = id === undefined ? undefined : this.keys.get(id);
    if (`${scheme}:` !== SEALED_PREFIX || !key || !iv || ciphertext === undefined || !tag) {
      throw new Error(`credential sealed with unknown key ${id ?? '?'}`);
    }
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(`${registryId}\0${field}`));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString(
      'utf8',
    );
  }

  /** The key id a sealed value was sealed with, or undefined for a value that is not sealed. */
  static keyIdOf(value: string): string | undefined {
    return value.startsWith(SEALED_PREFIX) ? value.split(':')[1] : undefined;
  }
}
