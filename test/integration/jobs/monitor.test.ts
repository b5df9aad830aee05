import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { registry } from '../../contract/registry-store.contract.js';
import type { Catalog } from '../../../src/catalog/app.js';
import type { HealthMonitor } from '../../../src/catalog/jobs/monitor.js';
import { createMonitoredCatalog, openMongoTestStore, type TestStore } from '../../helpers/catalog.js';
import { ManualClock } from '../../helpers/clock.js';
import type { Clock } from '../../../src/shared/clock.js';

/** A loopback "registry" that answers /v2/ and remembers when it was probed. */
async function countingRegistry(): Promise<{ url: string; hits: number[]; close(): void }> {
  const hits: number[] = [];
  const server = http.createServer((req, res) => {
    if (req.url === '/v2/') hits.push(Date.now());
    res.writeHead(200, {
      'docker-distribution-api-version': 'registry/2.0',
      'content-type': 'application/json',
    });
    res.end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () => server.close(),
  };
}

interface Replica {
  readonly opened: TestStore;
  readonly catalog: Catalog;
  readonly monitor: HealthMonitor;
}

/** One catalog replica: its own connection to the shared database, its own monitor. */
async function replica(database: string, owner: string, intervalMs: number, clock: Clock): Promise<Replica> {
  const opened = await openMongoTestStore(database);
  // No jitter: the test's clock moves in steps, and jitter would only spread starts within one.
  const config = { enabled: true, intervalMs, concurrency: 4, jitterMs: 0, historySize: 10 };
  return { opened, ...createMonitoredCatalog(opened, { owner, config, probeTimeoutMs: 2000, clock }) };
}

describe('health monitor across replicas (two monitors on one FerretDB/MongoDB)', function () {
  this.timeout(60_000);
  const intervalMs = 1000;
  let targets: Array<Awaited<ReturnType<typeof countingRegistry>>>;
  let replicas: Replica[];
  let clock: ManualClock;
  let startedAt: number;

  beforeEach(async () => {
    const database = `monitor_${Math.floor(Math.random() * 0xffffffff).toString(16)}`;
    // The monitors run on their own timers, driven by one clock that moves a quarter interval at
    // a time (waiting for each sweep to finish) instead of sleeping through real intervals.
    startedAt = Math.ceil(Date.now() / intervalMs) * intervalMs;
    clock = new ManualClock(startedAt);
    targets = await Promise.all(Array.from({ length: 8 }, () => countingRegistry()));
    replicas = [
      await replica(database, 'replica-a', intervalMs, clock),
      await replica(database, 'replica-b', intervalMs, clock),
    ];
    for (const [i, target] of targets.entries()) {
      await replicas[0]!.opened.store.create(
        registry(100 + i, { container_registry_public_url: target.url }),
      );
    }
  });

  afterEach(async () => {
    if (!replicas) return;
    for (const { monitor } of replicas) await monitor.stop();
    await replicas[0]!.opened.cleanup();
    await replicas[1]!.opened.store.close();
    for (const target of targets) target.close();
  });

  it('probes each registry exactly once per slot, sharing the work', async () => {
    const slot = replicas[0]!.monitor.currentSlot() + 1000;
    const [a, b] = await Promise.all(replicas.map(({ monitor }) => monitor.sweep(slot)));
    expect(a!.claimed + b!.claimed).to.equal(targets.length);
    expect(targets.map((target) => target.hits.length)).to.deep.equal(targets.map(() => 1));

    // replica-b is gone: replica-a picks up every registry in the next slot.
    const alone = await replicas[0]!.monitor.sweep(slot + 1);
    expect(alone.claimed).to.equal(targets.length);
    expect(targets.map((target) => target.hits.length)).to.deep.equal(targets.map(() => 2));
  });

  it('with timers running, probes each registry at most once per interval, and keeps probing after a replica stops', async () => {
    const monitors = replicas.map(({ monitor }) => monitor);
    const tick = async (running: HealthMonitor[]) => {
      clock.advance(intervalMs / 4);
      await Promise.all(running.map((monitor) => monitor.idle()));
    };
    for (const monitor of monitors) monitor.start();
    for (let i = 0; i < 10; i++) await tick(monitors); // 2.5 intervals
    await monitors[1]!.stop();
    const before = targets.map((target) => target.hits.length);
    for (let i = 0; i < 10; i++) await tick(monitors.slice(0, 1));
    await monitors[0]!.stop();
    // One probe per registry per interval slot, cluster-wide: never more probes than slots touched.
    const slots = Math.floor(clock.now() / intervalMs) - Math.floor(startedAt / intervalMs) + 1;
    for (const target of targets) expect(target.hits.length).to.be.within(slots - 2, slots);
    targets.forEach((target, i) =>
      expect(target.hits.length - before[i]!, 'probed after replica-b stopped').to.be.at.least(2),
    );
    const record = await replicas[0]!.catalog.health!.record(registry(100).container_registry_id);
    expect(record.last.status).to.equal('healthy');
  });
});
