import { expect } from 'chai';
import type { HealthReport, HealthStatus } from '../../src/catalog/model.js';
import type { DocumentDatabase } from '../../src/catalog/store/collection.js';
import type { HealthStore } from '../../src/catalog/store/health-store.js';

export function report(status: HealthStatus, checkedAt: string): HealthReport {
  return {
    reachable: status === 'healthy' || status === 'unhealthy',
    status_code: status === 'healthy' ? 200 : null,
    reason: status === 'healthy' ? 'OK' : null,
    url: 'http://registry.example.test',
    probe_url: 'http://registry.example.test/v2/',
    detail: status,
    status,
    oci_compatible: status === 'healthy',
    api_version: status === 'healthy' ? 'registry/2.0' : null,
    auth: null,
    latency_ms: 3,
    checked_at: checkedAt,
    error: null,
  };
}

const ID_A = '00000000-0000-4000-8000-00000000000a';
const ID_B = '00000000-0000-4000-8000-00000000000b';

/** The contract of `HealthStore`, run on each implementation by the files beside this one. */
export function describeHealthStoreContract(
  name: string,
  open: () => Promise<{ healthStore: HealthStore; database: DocumentDatabase; cleanup(): Promise<void> }>,
  /** The collection name prefix the store was opened with (as `serve` opens it on this backend). */
  prefix: string,
): void {
  describe(`HealthStore contract: ${name}`, () => {
    let store: HealthStore;
    let database: DocumentDatabase;
    let cleanup: () => Promise<void>;
    beforeEach(async () => {
      ({ healthStore: store, database, cleanup } = await open());
    });
    afterEach(async () => {
      await cleanup();
    });

    it('records the last report and a bounded history, newest first, returning the previous status', async () => {
      expect(await store.record(ID_A, report('healthy', '2026-01-01T00:00:01Z'), 3)).to.equal(undefined);
      expect(await store.record(ID_A, report('unreachable', '2026-01-01T00:00:02Z'), 3)).to.equal('healthy');
      await store.record(ID_A, report('healthy', '2026-01-01T00:00:03Z'), 3);
      await store.record(ID_A, report('unhealthy', '2026-01-01T00:00:04Z'), 3);
      const record = await store.get(ID_A);
      expect(record?.last.checked_at).to.equal('2026-01-01T00:00:04Z');
      expect(record?.history.map((entry) => entry.checked_at)).to.deep.equal([
        '2026-01-01T00:00:04Z',
        '2026-01-01T00:00:03Z',
        '2026-01-01T00:00:02Z',
      ]);
      expect(record?.last).to.deep.equal(report('unhealthy', '2026-01-01T00:00:04Z'));
      expect(await store.get(ID_B)).to.equal(undefined);
    });

    it('reads reports stored before url/reason got the original meanings in the current shape', async () => {
      const { probe_url, detail, ...older } = report('healthy', '2026-01-01T00:00:01Z');
      void detail;
      const stored = { ...older, url: probe_url, reason: 'the registry answered /v2/ with 200' };
      await store.record(ID_A, stored as unknown as HealthReport, 3);
      expect((await store.get(ID_A))?.last).to.deep.equal({
        ...report('healthy', '2026-01-01T00:00:01Z'),
        detail: 'the registry answered /v2/ with 200',
      });
    });

    it('gives the last status and latency of many registries at once, also from statuses stored before they kept the latency', async () => {
      await store.record(ID_A, report('healthy', '2026-01-01T00:00:01Z'), 5);
      await store.record(ID_A, { ...report('unreachable', '2026-01-01T00:00:02Z'), latency_ms: 40 }, 5);
      await store.record(ID_B, { ...report('healthy', '2026-01-01T00:00:03Z'), latency_ms: 7 }, 5);
      const expected = {
        [ID_A]: { status: 'unreachable', latency_ms: 40 },
        [ID_B]: { status: 'healthy', latency_ms: 7 },
      };
      const ID_C = '00000000-0000-4000-8000-00000000000c';
      expect(Object.fromEntries(await store.lastChecks([ID_A, ID_B, ID_C]))).to.deep.equal(expected);
      // A status document as earlier versions wrote it: no latency (the history has it).
      const statuses = await database.collection<Record<string, unknown>>(`${prefix}health_statuses`, {
        idField: 'registry_id',
        indexes: [{ field: 'status', kind: 'column', column: 'status' }],
      });
      const stored = (await statuses.get(ID_A))!;
      const { latency_ms, ...older } = stored.document;
      expect(latency_ms).to.equal(40);
      expect((await statuses.replaceIfVersion(older, stored.version)).status).to.equal('replaced');
      expect(Object.fromEntries(await store.lastChecks([ID_A, ID_B]))).to.deep.equal(expected);
    });

    it('lists last statuses and forgets a removed registry', async () => {
      await store.record(ID_A, report('healthy', '2026-01-01T00:00:01Z'), 5);
      await store.record(ID_B, report('refused', '2026-01-01T00:00:02Z'), 5);
      expect(Object.fromEntries(await store.lastStatuses())).to.deep.equal({
        [ID_A]: { status: 'healthy', checkedAt: '2026-01-01T00:00:01Z' },
        [ID_B]: { status: 'refused', checkedAt: '2026-01-01T00:00:02Z' },
      });
      await store.remove(ID_B);
      expect([...(await store.lastStatuses()).keys()]).to.deep.equal([ID_A]);
    });

    it('gives each (registry, slot) claim to exactly one of many concurrent claimants', async () => {
      const results = await Promise.all(
        Array.from({ length: 16 }, (_, i) => store.claim([ID_A, ID_B], 7, `owner-${i}`)),
      );
      expect(results.filter((won) => won.has(ID_A))).to.have.length(1);
      expect(results.filter((won) => won.has(ID_B))).to.have.length(1);
      expect([...(await store.claim([ID_A], 8, 'owner-0'))]).to.deep.equal([ID_A]);
      expect([...(await store.claim([ID_A, ID_B], 8, 'owner-1'))], 'only the unclaimed one').to.deep.equal([
        ID_B,
      ]);
      expect(await store.claim([], 9, 'owner-0')).to.have.property('size', 0);
      await store.pruneClaims(8);
      expect(
        [...(await store.claim([ID_A], 7, 'owner-1'))],
        'a pruned slot can be claimed again',
      ).to.deep.equal([ID_A]);
      expect(await store.claim([ID_A], 8, 'owner-2'), 'a kept slot stays claimed').to.have.property(
        'size',
        0,
      );
    });
  });
}
