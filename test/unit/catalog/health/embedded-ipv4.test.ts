import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { AddressPolicy } from '../../../../src/catalog/health/address-policy.js';

/** The probe's address policy on IPv6 forms that carry an IPv4 address (test/fixtures/hostile/addresses.json). */
const corpus = JSON.parse(
  readFileSync(new URL('../../../fixtures/hostile/addresses.json', import.meta.url), 'utf8'),
) as { refused: string[]; allowed: string[]; refusedEvenIfLoopbackAllowed: string[] };

describe('probe address policy: IPv6 forms embedding IPv4', () => {
  const defaults = new AddressPolicy({ allow: [], deny: [] });
  for (const ip of corpus.refused)
    it(`refuses ${ip}`, () =>
      expect(defaults.check(ip).allowed, JSON.stringify(defaults.check(ip))).to.equal(false));
  for (const ip of corpus.allowed)
    it(`allows ${ip}`, () =>
      expect(defaults.check(ip).allowed, JSON.stringify(defaults.check(ip))).to.equal(true));

  const loopbackOpen = new AddressPolicy({ allow: ['127.0.0.0/8', '::1/128'], deny: [] });
  for (const ip of corpus.refusedEvenIfLoopbackAllowed)
    it(`refuses ${ip} even with loopback allowed`, () =>
      expect(loopbackOpen.check(ip).allowed).to.equal(false));

  it('names the embedded address and its rule', () => {
    expect(defaults.check('64:ff9b::a9fe:a9fe')).to.deep.equal({
      allowed: false,
      reason:
        '64:ff9b::a9fe:a9fe is NAT64 for 169.254.169.254: 169.254.169.254 is link-local (incl. cloud metadata 169.254.169.254), which is never probed',
    });
    expect(JSON.stringify(defaults.check('::127.0.0.1'))).to.match(/IPv4-compatible/);
  });

  it('applies HEALTH_PROBE_DENY to the embedded IPv4 address', () => {
    const deny = new AddressPolicy({ allow: [], deny: ['10.0.0.0/8'] });
    expect(deny.check('64:ff9b::10.13.21.22').allowed).to.equal(false);
    expect(deny.check('2002:a0d:1516::1').allowed).to.equal(false);
  });
});
