import { expect } from 'chai';
import { AddressPolicy } from '../../../src/catalog/health/address-policy.js';
import { createProber } from '../../../src/catalog/health/probe.js';
import { fakeResolver, registryHandler, targetPerTest } from '../../helpers/probe-targets.js';

/**
 * The prober with an injected resolver: names resolving to IPv6 forms that embed a refused IPv4
 * address (NAT64, IPv4-compatible, 6to4) are refused before connecting, and so are such literals.
 * The loopback target only counts connections: none may arrive.
 */
describe('health probe SSRF guard: IPv6 forms embedding IPv4', () => {
  const target = targetPerTest(registryHandler);

  it('refuses names and literals that reach loopback or metadata through an IPv6 form', async () => {
    const port = new URL(target().url).port;
    const table: Record<string, string[]> = {
      'nat64.test': ['64:ff9b::7f00:1'],
      'compatible.test': ['::7f00:1'],
      'sixtofour.test': ['2002:7f00:1::1'],
      'metadata.test': ['64:ff9b::a9fe:a9fe'],
    };
    const { lookup, asked } = fakeResolver(table);
    const prober = createProber({
      policy: new AddressPolicy({ allow: [], deny: [] }),
      lookup,
      defaultTimeoutMs: 1000,
    });
    for (const name of Object.keys(table)) {
      const report = await prober({ url: `http://${name}:${port}/` });
      expect(report.status, `${name}: ${report.detail}`).to.equal('refused');
      expect(report.detail).to.match(/never probed|not probed/);
    }
    for (const literal of ['[::127.0.0.1]', '[64:ff9b::127.0.0.1]', '[::ffff:0:7f00:1]']) {
      const report = await prober({ url: `http://${literal}:${port}/` });
      expect(report.status, literal).to.equal('refused');
    }
    expect(asked).to.deep.equal(Object.keys(table));
    expect(target().connections()).to.equal(0);
  });
});
