import { expect } from 'chai';
import {
  catalogTarget,
  formatReport,
  fuzz,
  proxyRegistryTarget,
  registryTarget,
} from '../stress/http-fuzz.js';

// 10,000 random and mutated requests against each server process (test/stress/http-fuzz.ts;
// about 20 s for the catalog on the embedded store, 10 s for the registry here), 4,000 on
// FerretDB: the same catalog code on a backend that answers far slower (10,000 took 45-120 s
// here, the longest test of the suite on a loaded day; test/stress/http-fuzz.ts sends more).
// Zero 5xx, the process alive at the end, and no rejected request changes what is stored.
describe('HTTP fuzz', function () {
  this.timeout(300_000);
  const cases = [
    { name: 'catalog, embedded store', make: () => catalogTarget('embedded'), requests: 10_000 },
    { name: 'catalog, MongoDB store on FerretDB', make: () => catalogTarget('mongo'), requests: 4_000 },
    { name: 'registry', make: registryTarget, requests: 10_000 },
  ];
  for (const { name, make, requests } of cases) {
    it(`${name}: ${requests} requests, no 5xx, no crash, no state change from a rejected request`, async () => {
      const target = await make();
      try {
        const report = await fuzz(target, requests, 20261122);
        console.log(`      ${formatReport(report)}`);
        expect(report.failures).to.deep.equal([]);
        expect(report.stateChanges).to.deep.equal([]);
        expect(report.alive).to.equal(true);
        expect(report.stateChecks).to.be.greaterThan(requests / 2);
        expect(
          Object.keys(report.statuses).filter((status) => status.startsWith('2')).length,
        ).to.be.greaterThan(0);
      } finally {
        await target.stop();
      }
    });
  }

  // The pull-through cache stores what accepted reads fetched, partly after answering (links and
  // last-pull mtimes are written in the background), so "no state change after a rejection"
  // cannot be told apart from an earlier read settling: this case checks answers and liveness.
  it('registry as a pull-through cache of a second registry: 3000 requests, no 5xx, no crash', async () => {
    const target = await proxyRegistryTarget();
    try {
      const report = await fuzz(target, 3000, 20261201);
      console.log(`      ${formatReport(report)}`);
      expect(report.failures).to.deep.equal([]);
      expect(report.alive).to.equal(true);
      expect(
        Object.keys(report.statuses).filter((status) => status.startsWith('2')).length,
      ).to.be.greaterThan(0);
    } finally {
      await target.stop();
    }
  });
});
