import { expect } from 'chai';
import { startDistribution, startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { KNOWN_DIFFERENCES, PROBES, type Observation } from './registry-differences.js';

describe('registry: behaviour compared with CNCF Distribution (docker-registry)', function () {
  this.timeout(60_000);
  let ours: TestRegistry;
  let distribution: Awaited<ReturnType<typeof startDistribution>>;
  const results = new Map<string, { ours: Observation; distribution: Observation }>();

  before(async () => {
    ours = await startTestRegistry();
    distribution = await startDistribution();
    for (const probe of PROBES) {
      results.set(probe.id, {
        ours: await probe.run(ours.url),
        distribution: await probe.run(distribution.url),
      });
    }
  });
  after(async () => {
    await ours?.close();
    await distribution?.stop();
  });

  it('answers like Distribution wherever no written reason says otherwise', () => {
    const unexplained = [...results]
      .filter(
        ([id, result]) =>
          !KNOWN_DIFFERENCES[id] && JSON.stringify(result.ours) !== JSON.stringify(result.distribution),
      )
      .map(
        ([id, result]) =>
          `${id}: ours ${JSON.stringify(result.ours)} vs ${JSON.stringify(result.distribution)}`,
      );
    expect(unexplained).to.deep.equal([]);
  });

  it('still differs where the list says so (the written differences are current)', () => {
    const stale = Object.keys(KNOWN_DIFFERENCES).filter((id) => {
      const result = results.get(id);
      return result === undefined || JSON.stringify(result.ours) === JSON.stringify(result.distribution);
    });
    expect(stale).to.deep.equal([]);
  });

  it('agrees on the core pull and push paths', () => {
    for (const id of [
      'GET /v2/',
      'GET manifest by tag (OCI)',
      'GET blob range',
      'POST mount from a repository with the blob',
    ]) {
      expect(results.get(id)?.ours, id).to.deep.equal(results.get(id)?.distribution);
    }
    expect(results.get('GET manifest by tag (OCI)')?.ours.status).to.equal(200);
  });
});
