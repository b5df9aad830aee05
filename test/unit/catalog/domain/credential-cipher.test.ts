import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { CredentialCipher } from '../../../../src/catalog/domain/credential-cipher.js';
import { ConfigError } from '../../../../src/shared/config/env.js';
import { loadCatalogConfig } from '../../../../src/catalog/config.js';

const ID = 'b3c38f52-8f2e-43a3-9aa9-bd9a4c75e509';

describe('credential cipher', () => {
  const old = { id: 'k1', key: randomBytes(32) };
  const current = { id: 'k2', key: randomBytes(32) };

  it('seals with the current key and opens with any configured key', () => {
    const sealedOld = new CredentialCipher([old]).seal('pw', ID, 'password');
    const rotated = new CredentialCipher([current, old]);
    expect(CredentialCipher.keyIdOf(sealedOld)).to.equal('k1');
    expect(rotated.open(sealedOld, ID, 'password')).to.equal('pw');
    const sealedNew = rotated.seal('pw', ID, 'password');
    expect(CredentialCipher.keyIdOf(sealedNew)).to.equal('k2');
    expect(sealedNew).to.not.equal(rotated.seal('pw', ID, 'password'), 'a fresh IV each time');
  });

  it('refuses a value moved to another registry or field, tampered with, or sealed with an unknown key', () => {
    const cipher = new CredentialCipher([current]);
    const sealed = cipher.seal('pw', ID, 'password');
    expect(() => cipher.open(sealed, '00000000-0000-4000-8000-000000000000', 'password')).to.throw();
    expect(() => cipher.open(sealed, ID, 'token')).to.throw();
    const parts = sealed.split(':');
    parts[3] = Buffer.from('xx').toString('base64url');
    expect(() => cipher.open(parts.join(':'), ID, 'password')).to.throw();
    expect(() => new CredentialCipher([old]).open(sealed, ID, 'password')).to.throw(/unknown key k2/);
  });

  it('reads keys from CREDENTIALS_KEYS and names the variable when one is bad', () => {
    const key = randomBytes(32).toString('base64');
    expect(
      loadCatalogConfig({ CREDENTIALS_KEYS: `a:${key}, b:${key}` }).credentialKeys.map((k) => k.id),
    ).to.deep.equal(['a', 'b']);
    expect(() => loadCatalogConfig({ CREDENTIALS_KEYS: 'a:c2hvcnQ=' })).to.throw(
      ConfigError,
      /CREDENTIALS_KEYS key a is not 32 bytes/,
    );
    expect(() => loadCatalogConfig({ CREDENTIALS_KEYS: `a:${key},a:${key}` })).to.throw(
      ConfigError,
      /same key id/,
    );
    expect(() => loadCatalogConfig({ CREDENTIALS_KEYS_FILE: '/nonexistent/keys' })).to.throw(
      ConfigError,
      /CREDENTIALS_KEYS_FILE/,
    );
  });

  it('names the variable for other bad configuration', () => {
    expect(() => loadCatalogConfig({ PORT: 'eighty' })).to.throw(
      ConfigError,
      /^invalid configuration: PORT must be an integer/,
    );
    expect(() => loadCatalogConfig({ LOG_LEVEL: 'loud' })).to.throw(ConfigError, /LOG_LEVEL must be one of/);
  });
});
