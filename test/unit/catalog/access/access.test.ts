import { expect } from 'chai';
import { AccessPolicy } from '../../../../src/catalog/access/policy.js';
import { requirementOf } from '../../../../src/catalog/routes/table.js';
import { createToken, parseTokenEntries } from '../../../../src/catalog/access/tokens.js';
import { loadCatalogConfig } from '../../../../src/catalog/config.js';
import { ConfigError } from '../../../../src/shared/config/env.js';

describe('access: what each request needs', () => {
  const cases: Array<[string, string, string, boolean]> = [
    ['GET', '/healthz', 'public', false],
    ['GET', '/readyz/', 'public', false],
    ['OPTIONS', '/container_registry', 'public', false],
    ['GET', '/container_registry/0b6c6fe0-1f0e-4d7e-9c55-0d7b5c6c1a11', 'read', false],
    ['HEAD', '/openapi.json', 'read', false],
    ['POST', '/container_registries?limit=5', 'read', false],
    ['POST', '/CONTAINER_REGISTRIES/', 'read', false],
    ['GET', '/check_container_health/0b6c6fe0-1f0e-4d7e-9c55-0d7b5c6c1a11', 'read', true],
    ['POST', '/container_registry', 'write', false],
    ['POST', '/container_registry?verify=true', 'write', true],
    ['POST', '/container_registry?verify=false', 'write', false],
    ['PUT', '/container_registry/x', 'write', false],
    ['DELETE', '/container_registry/x', 'write', false],
    ['PATCH', '/anything', 'write', false],
    ['GET', '/metrics', 'admin', false],
    ['GET', '/Metrics/', 'admin', false],
    ['GET', '/not-a-route', 'read', false],
  ];
  for (const [method, url, role, probe] of cases) {
    it(`${method} ${url}: ${role}${probe ? ', counted as a health check' : ''}`, () => {
      expect(requirementOf(method, url)).to.deep.equal({ role, probe });
    });
  }
});

describe('access: tokens', () => {
  it('refuses malformed entries with a sentence naming the entry, never echoing a hash', () => {
    const hash = 'a'.repeat(64);
    expect(() => parseTokenEntries(`ci:boss:${hash}`)).to.throw(
      'entry ci has role "boss" (one of read, register, write, admin)',
    );
    expect(() => parseTokenEntries('ci:read:abc')).to.throw(/^entry 1 is not <name>:<role>:<sha256 hex>/);
    expect(() => parseTokenEntries(`ci:read:${hash}:someday`)).to.throw(/not an ISO 8601 date/);
    expect(() => parseTokenEntries(`ci:read:${hash}\nci:write:${'b'.repeat(64)}`)).to.throw(/listed twice/);
    expect(parseTokenEntries(`# comment\n\nci:read:${hash}:2030-01-01T00:00:00Z`)).to.have.length(1);
  });

  it('admits a token until it expires, and a replaced list revokes', () => {
    const soon = createToken('soon', 'write', new Date(1_000_000));
    const other = createToken('other', 'read');
    let now = 999_000;
    const policy = new AccessPolicy(parseTokenEntries(`${soon.entry}\n${other.entry}`), false, () => now);
    const write = { role: 'write' as const, probe: false };
    expect(policy.decide(write, `Bearer ${soon.token}`)).to.deep.equal({
      allowed: true,
      client: 'soon',
      role: 'write',
    });
    now = 1_000_000;
    expect(policy.decide(write, `Bearer ${soon.token}`)).to.include({ allowed: false, code: 'unauthorized' });
    policy.replaceTokens(parseTokenEntries(soon.entry));
    expect(policy.decide({ role: 'read', probe: false }, `bearer ${other.token}`)).to.include({
      code: 'unauthorized',
    });
  });
});

describe('access: where the server may listen', () => {
  const entry = createToken('ops', 'admin').entry;
  it('binds beyond loopback only with tokens or an explicit flag', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost'])
      expect(loadCatalogConfig({ HOST: host }).host).to.equal(host);
    expect(() => loadCatalogConfig({ HOST: '0.0.0.0' })).to.throw(
      ConfigError,
      /HOST is 0.0.0.0, not a loopback address/,
    );
    expect(() => loadCatalogConfig({ HOST: '::' })).to.throw(ConfigError);
    expect(loadCatalogConfig({ HOST: '0.0.0.0', API_TOKENS: entry }).access.tokens).to.have.length(1);
    expect(loadCatalogConfig({ HOST: '0.0.0.0', ALLOW_UNAUTHENTICATED: 'true' }).host).to.equal('0.0.0.0');
  });

  it('names the variable of a bad token list, and of an unreadable file', () => {
    expect(() => loadCatalogConfig({ API_TOKENS: 'nope' })).to.throw(
      ConfigError,
      /^invalid configuration: API_TOKENS entry 1/,
    );
    expect(() => loadCatalogConfig({ API_TOKENS_FILE: '/nonexistent/tokens' })).to.throw(
      'invalid configuration: API_TOKENS_FILE names a file that cannot be read (ENOENT)',
    );
  });
});
