/**
 * Events benchmark: events/s through the outbox to a loopback webhook receiver, with the p50/p99
 * of delivery latency (event time to the receiver's answer), on the embedded store and on
 * MongoDB (FerretDB unless MONGODB_URI is set); and the p99 of `PUT /container_registry/<id>`
 * with 10 webhooks subscribed against none (the added cost of writing the outbox), measured in
 * the same run on the same store. The catalog runs in-process (supertest-free: its handler on a
 * port-0 server), the receiver too.
 *
 *   npm run bench -- events [--events 500] [--puts 400] [--stores embedded,mongo]
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { generateSecret } from '../../src/catalog/events/webhook-signature.js';
import { startCatalog, type StoreKind, type TestCatalog } from '../../test/helpers/catalog.js';
import { stopMongoServer } from '../../test/helpers/mongo-server.js';
import { percentile } from '../../test/helpers/percentile.js';
import { deliveryJob } from '../../test/helpers/webhook-delivery.js';
import { startReceiver } from '../../test/helpers/webhook-receiver.js';

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== 'events'),
  options: {
    events: { type: 'string', default: '500' },
    puts: { type: 'string', default: '400' },
    stores: { type: 'string', default: 'embedded,mongo' },
  },
});
const EVENTS = Number(values.events);
const PUTS = Number(values.puts);
const secret = generateSecret();

async function serve(catalog: TestCatalog): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer({ keepAlive: true }, catalog.catalog.handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const job = (catalog: TestCatalog) =>
  deliveryJob(catalog, {
    owner: 'bench',
    config: { pollMs: 100, timeoutMs: 5_000, concurrency: 64, retryInitialMs: 100, retryMaxMs: 1_000 },
  });

/** An in-process catalog with a receiver, its delivery job (started when `delivering`) and one registry. */
async function setup(kind: StoreKind, delivering: boolean) {
  const catalog = await startCatalog(kind, {});
  const receiver = await startReceiver(secret);
  const delivery = job(catalog);
  if (delivering) delivery.start();
  const registry = async () =>
    String(
      (
        await catalog.api.post('/container_registry', {
          container_registry_name: 'b',
          container_registry_public_url: 'http://127.0.0.1:9',
        })
      ).body.data.id,
    );
  const stop = async () => {
    await delivery.stop();
    await receiver.close();
    await catalog.stop();
  };
  return { catalog, receiver, registry, stop };
}

/** Sequential PUTs (one client, no queueing): the latencies in ms. */
async function putLatencies(base: string, id: string, count: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let n = 0; n < count; n++) {
    const started = performance.now();
    const res = await fetch(`${base}/container_registry/${id}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ $set: { container_registry_metadata: { n } } }),
    });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`PUT answered ${res.status}`);
    latencies.push(performance.now() - started);
  }
  return latencies;
}

console.log(
  `# events bench: node ${process.version}, ${EVENTS} events through the outbox, ${PUTS} sequential PUTs per row`,
);
console.log('store      scenario                    events/s  p50 ms   p99 ms');
for (const kind of values.stores.split(',') as StoreKind[]) {
  // Throughput and delivery latency: one subscription, a burst of events published as fast as the store takes them.
  {
    const { catalog, receiver, registry, stop } = await setup(kind, true);
    await catalog.api.post('/webhooks', { url: receiver.url, events: ['registry.*'], secret });
    const id = await registry();
    while (receiver.received.length < 1) await new Promise((resolve) => setTimeout(resolve, 10));
    const arrivals: number[] = [];
    const startIndex = receiver.received.length;
    const origPush = receiver.received.push.bind(receiver.received);
    receiver.received.push = (...items) => {
      for (const item of items) arrivals.push(Date.now() - Date.parse(item.event.time));
      return origPush(...items);
    };
    const started = performance.now();
    const publisher = catalog.catalog.events!;
    const batch = 10;
    for (let n = 0; n < EVENTS; n += batch)
      await publisher.publish(
        Array.from({ length: Math.min(batch, EVENTS - n) }, (_, i) => ({
          type: 'registry.updated' as const,
          registryId: id,
          data: { n: n + i },
        })),
      );
    while (receiver.received.length - startIndex < EVENTS)
      await new Promise((resolve) => setTimeout(resolve, 5));
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `${kind.padEnd(10)} outbox -> receiver         ${String(Math.round(EVENTS / seconds)).padEnd(9)} ${String(percentile(arrivals, 50)).padEnd(8)} ${percentile(arrivals, 99)}`,
    );
    await stop();
  }
  // Added p99 of PUT: none vs 10 subscriptions matching every update (deliveries running meanwhile).
  // "outbox only": the delivery job off, so the row shows what writing the outbox adds to a PUT;
  // "delivering": the job sends the 10 deliveries of each PUT meanwhile, in the same process and store.
  for (const [webhooks, delivering] of [
    [0, true],
    [10, false],
    [10, true],
  ] as const) {
    const { catalog, receiver, registry, stop } = await setup(kind, delivering);
    for (let i = 0; i < webhooks; i++)
      await catalog.api.post('/webhooks', { url: receiver.url, events: ['registry.updated'], secret });
    const id = await registry();
    const server = await serve(catalog);
    await putLatencies(server.url, id, 20); // warm-up
    const latencies = await putLatencies(server.url, id, PUTS);
    console.log(
      `${kind.padEnd(10)} PUT, ${String(webhooks).padEnd(2)} webhooks ${(webhooks === 0 ? '' : delivering ? 'delivering' : 'outbox only').padEnd(11)}  ${String(Math.round(PUTS / (latencies.reduce((a, b) => a + b, 0) / 1000))).padEnd(9)} ${percentile(latencies, 50).toFixed(1).padEnd(8)} ${percentile(latencies, 99).toFixed(1)}`,
    );
    await server.close();
    await stop();
  }
}
await stopMongoServer();
