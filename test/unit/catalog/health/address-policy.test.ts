import { expect } from 'chai';
import { AddressPolicy } from '../../../../src/catalog/health/address-policy.js';
import { parseChallenge } from '../../../../src/catalog/health/www-authenticate.js';
import { loadHealthConfig } from '../../../../src/catalog/health/config.js';
import { ConfigError } from '../../../../src/shared/config/env.js';

describe('probe address policy', () => {
  const defaults = new AddressPolicy({ allow: [], deny: [] });
  const cases: Array<[string, boolean]> = [
    ['10.13.21.22', true],
    ['192.168.1.10', true],
    ['172.16.0.1', true],
    ['fd12::1', true],
    ['203.0.113.7', true],
    ['2001:db8::1', true],
    ['127.0.0.1', false],
    ['127.1.2.3', false],
    ['::1', false],
    ['169.254.169.254', false],
    ['169.254.1.1', false],
    ['fe80::1', false],
    ['fd00:ec2::254', false],
    ['::ffff:169.254.169.254', false],
    ['::ffff:127.0.0.1', false],
    ['0.0.0.0', false],
    ['::', false],
    ['224.0.0.1', false],
    ['ff02::1', false],
    ['255.255.255.255', false],
    ['not-an-ip', false],
  ];
  for (const [ip, allowed] of cases) {
    it(`${allowed ? 'allows' : 'refuses'} ${ip} by default`, () => {
      expect(defaults.check(ip).allowed).to.equal(allowed);
    });
  }

  it('opens loopback with an allow list but never link-local or metadata', () => {
    const open = new AddressPolicy({
      allow: ['127.0.0.0/8', '::1/128', '169.254.0.0/16', '0.0.0.0/0'],
      deny: [],
    });
    expect(open.check('127.0.0.1').allowed).to.equal(true);
    expect(open.check('::1').allowed).to.equal(true);
    expect(open.check('169.254.169.254').allowed).to.equal(false);
    expect(open.check('fd00:ec2::254').allowed).to.equal(false);
  });

  it('refuses what the deny list names, even if allowed', () => {
    const policy = new AddressPolicy({ allow: ['10.0.0.0/8'], deny: ['10.13.0.0/16'] });
    const verdict = policy.check('10.13.21.22');
    expect(verdict.allowed).to.equal(false);
    expect(verdict.allowed === false && verdict.reason).to.include('HEALTH_PROBE_DENY');
  });

  it('reads the lists from the environment and names a bad entry', () => {
    expect(loadHealthConfig({ HEALTH_PROBE_ALLOW: '127.0.0.0/8, ::1/128' }).probeAllow).to.deep.equal([
      '127.0.0.0/8',
      '::1/128',
    ]);
    expect(() => loadHealthConfig({ HEALTH_PROBE_DENY: '10.0.0.0/33' })).to.throw(
      ConfigError,
      /HEALTH_PROBE_DENY/,
    );
  });
});

describe('WWW-Authenticate parsing', () => {
  it('reads a Bearer challenge with quoted parameters', () => {
    expect(
      parseChallenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull"',
      ),
    ).to.deep.equal({
      scheme: 'Bearer',
      params: {
        realm: 'https://auth.example/token',
        service: 'registry.example',
        scope: 'repository:a:pull',
      },
    });
  });
  it('reads a Basic challenge and unquoted or escaped values', () => {
    expect(parseChallenge('Basic realm="Registry \\"x\\""')).to.deep.equal({
      scheme: 'Basic',
      params: { realm: 'Registry "x"' },
    });
    expect(parseChallenge('Bearer realm=token, service=reg')?.params).to.deep.equal({
      realm: 'token',
      service: 'reg',
    });
    expect(parseChallenge(undefined)).to.equal(undefined);
  });
});
