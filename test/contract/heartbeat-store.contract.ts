import { expect } from 'chai';
import { HeartbeatService } from '../../src/catalog/domain/heartbeats.js';
import { RegistryService } from '../../src/catalog/domain/registries.js';
import type { HeartbeatStore } from '../../src/catalog/store/heartbeat-store.js';
import type { RegistryStore } from '../../src/catalog/store/registry-store.js';
import { SchemaSet } from '../../src/shared/schemas.js';

const ID = '00000000-0000-4000-8000-0000000000c1';
const T0 = Date.parse('2026-12-02T00:00:00Z');
const schemas = new SchemaSet();

const beat = (instance: string) => ({
  instance_id: instance,
  status: 'live',
  version: '1',
  interval_s: 1,
  started_at: new Date(T0).toISOString(),
  storage: { used_bytes: 1, free_bytes: 2 },
  repositories: 3,
});

/**
 * The contract of `HeartbeatStore` with the service on top, run on each backend: concurrent
 * heartbeats of many replicas all land (compare-and-swap), and two catalog replicas watching
 * for staleness announce a transition exactly once.
 */
export function describeHeartbeatStoreContract(
  name: string,
  open: () => Promise<{ heartbeatStore: HeartbeatStore; store: RegistryStore; cleanup(): Promise<void> }>,
): void {
  describe(`HeartbeatStore contract: ${name}`, () => {
    let heartbeatStore: HeartbeatStore;
    let registries: RegistryService;
    let cleanup: () => Promise<void>;
    const service = (now: number) =>
      new HeartbeatService({ store: heartbeatStore, registries, schemas, now: () => now });

    beforeEach(async () => {
      let store: RegistryStore;
      ({ heartbeatStore, store, cleanup } = await open());
      registries = new RegistryService({ store, schemas });
    });
    afterEach(() => cleanup());

    it('keeps every replica of concurrent heartbeats, and one entry', async () => {
      const registrar = service(T0);
      const first = await registrar.register(
        ID,
        { container_registry_name: 'self', container_registry_public_url: 'http://127.0.0.1:5000' },
        undefined,
      );
      expect(first.created).to.equal(true);
      const again = await registrar.register(
        ID,
        { container_registry_name: 'self', container_registry_public_url: 'http://127.0.0.1:5000' },
        undefined,
      );
      expect(again.created).to.equal(false);
      await Promise.all(
        Array.from({ length: 12 }, (_, i) => registrar.beat(ID, beat(`replica-${i}`), undefined)),
      );
      const view = await registrar.viewOf(ID);
      expect(view?.instances.map((instance) => instance.instance_id).sort()).to.have.length(12);
      expect(view?.status).to.equal('live');
    });

    it('announces a stale transition once across two watching replicas, again after a new beat', async () => {
      await service(T0).register(
        ID,
        { container_registry_name: 'self', container_registry_public_url: 'http://127.0.0.1:5000' },
        undefined,
      );
      await service(T0).beat(ID, beat('a'), undefined);
      const collect = async (watcher: HeartbeatService) => {
        const found = [];
        for await (const transition of watcher.staleTransitions()) found.push(transition);
        return found;
      };
      expect(await collect(service(T0 + 2_000))).to.have.length(0); // within three intervals
      const later = T0 + 10_000;
      const [one, two] = await Promise.all([collect(service(later)), collect(service(later))]);
      expect(one.length + two.length).to.equal(1);
      expect([...one, ...two][0]!.registry.container_registry_id).to.equal(ID);
      expect(await collect(service(later + 1_000))).to.have.length(0);
      await service(later + 2_000).beat(ID, beat('a'), undefined);
      expect(await collect(service(later + 20_000))).to.have.length(1);
    });
  });
}
