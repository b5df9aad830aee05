/**
 * The catalog with its monitor for the health bench, in its own process. Registers 1,000
 * registries (20% on hanging servers), serves the API, and on SIGUSR2 runs one monitor sweep,
 * printing {"sweepMs", "rssBeforeMb", "rssPeakMb", "claimed"} when it ends.
 *   node --import tsx bench/health/catalog.ts '<targets json>' <registries> <hangingPercent> <concurrency> <jitterMs>
 */
import { loadHealthConfig } from '../../src/catalog/health/config.js';
import { listen } from '../../src/shared/server.js';
import { createMonitoredCatalog, openTestStore } from '../../test/helpers/catalog.js';
import { documentAt } from '../catalog/documents.js';

const [
  targetsJson = '{}',
  countText = '1000',
  hangingPercentText = '20',
  concurrencyText = '256',
  jitterText = '0',
] = process.argv.slice(2);
const targets = JSON.parse(targetsJson) as { healthy: string[]; hanging: string[] };
const count = Number(countText);
const hangingEvery = Math.round(100 / Number(hangingPercentText));

const { store, healthStore } = await openTestStore('embedded');
for (let i = 0; i < count; i++) {
  const pool = i % hangingEvery === 0 ? targets.hanging : targets.healthy;
  await store.create({ ...documentAt(i), container_registry_public_url: `${pool[i % pool.length]}/r${i}` });
}
const { catalog, monitor } = createMonitoredCatalog(
  { store, healthStore },
  {
    owner: 'bench',
    probeTimeoutMs: loadHealthConfig({}).probeTimeoutMs,
    config: {
      enabled: true,
      intervalMs: 60_000,
      concurrency: Number(concurrencyText),
      jitterMs: Number(jitterText),
      historySize: 50,
    },
  },
);
const server = await listen(catalog.handler, { host: '127.0.0.1', port: 0 });
console.log(JSON.stringify({ url: server.url }));

let slot = 1;
process.on('SIGUSR2', () => {
  const rssBefore = process.memoryUsage().rss;
  let peak = rssBefore;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const started = performance.now();
  void monitor.sweep(slot++).then(({ claimed }) => {
    clearInterval(sampler);
    console.log(
      JSON.stringify({
        sweepMs: performance.now() - started,
        rssBeforeMb: rssBefore / 2 ** 20,
        rssPeakMb: peak / 2 ** 20,
        claimed,
      }),
    );
  });
});
process.on('SIGUSR1', () => {
  // Sequential reference: the original checked one registry after another.
  void (async () => {
    const healthy = await store.find(
      {
        container_registry_id: {
          $in: [
            documentAt(1).container_registry_id,
            documentAt(2).container_registry_id,
            documentAt(3).container_registry_id,
            documentAt(4).container_registry_id,
            documentAt(6).container_registry_id,
          ],
        },
      },
      { sort: [], skip: 0, limit: 10 },
    );
    const hanging = (await store.get(documentAt(0).container_registry_id))!.document;
    const t0 = performance.now();
    for (const document of healthy) await catalog.health!.probeAndRecord(document);
    const healthyMs = (performance.now() - t0) / healthy.length;
    const t1 = performance.now();
    await catalog.health!.probeAndRecord(hanging);
    const hangingMs = performance.now() - t1;
    console.log(JSON.stringify({ healthyMs, hangingMs }));
  })();
});
process.on('SIGTERM', () => process.exit(0));
