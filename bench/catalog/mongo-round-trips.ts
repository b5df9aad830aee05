/**
 * Round trips to MongoDB/FerretDB per catalog request: a loopback proxy between the catalog and
 * FerretDB (or `MONGODB_URI`; test/helpers/mongo-wire-proxy.ts) counts the commands by name. The catalog runs in-process on 1,000 documents (bench/catalog/documents.ts); each row
 * is one request type, repeated, with the commands it cost on average.
 *
 *   node --import tsx bench/catalog/mongo-round-trips.ts [repeats]
 */
import { startCatalog } from '../../test/helpers/catalog.js';
import { getMongoUri, stopMongoServer } from '../../test/helpers/mongo-server.js';
import { startMongoWireProxy } from '../../test/helpers/mongo-wire-proxy.js';
import { documentAt, idAt, TAGS } from './documents.js';

const repeats = Number(process.argv[2] ?? 20);
const proxy = await startMongoWireProxy(await getMongoUri());
const counts = proxy.counts;
process.env.MONGODB_URI = proxy.uri; // the catalog's store connects through the proxy

const catalog = await startCatalog('mongo');
for (let i = 0; i < 1000; i += 100)
  await catalog.store.create(documentAt(i)).then(async () => {
    await Promise.all(Array.from({ length: 99 }, (_, j) => catalog.store.create(documentAt(i + j + 1))));
  });

const rows: Array<[string, (i: number) => Promise<{ status: number }>]> = [
  ['GET by id', (i) => catalog.api.get(`/container_registry/${idAt((i * 37) % 1000)}`)],
  [
    'PUT $set (spread)',
    (i) =>
      catalog.api.put(`/container_registry/${idAt((i * 53) % 1000)}`, {
        $set: { 'container_registry_metadata.owner': `o${i}` },
      }),
  ],
  [
    'POST $in query, limit=100',
    (i) =>
      catalog.api.post('/container_registries?limit=100', {
        container_registry_tags: { $in: [TAGS[i % TAGS.length], 't7'] },
      }),
  ],
];
console.log(`# round trips per request, ${repeats} requests each, 1000 documents`);
for (const [name, send] of rows) {
  await send(repeats); // warm-up: the ids' server _ids are learnt
  counts.clear();
  for (let i = 0; i < repeats; i++) {
    const { status } = await send(i);
    if (status >= 300) throw new Error(`${name}: ${status}`);
  }
  // Work an update leaves for later (version claims released in batches) counts as its own.
  await new Promise((resolve) => setTimeout(resolve, 4_000));
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const each = [...counts].map(([command, n]) => `${command} ${(n / repeats).toFixed(2)}`).join(', ');
  console.log(`${name.padEnd(28)} ${(total / repeats).toFixed(2)} commands (${each})`);
}
await catalog.stop();
await proxy.close();
await stopMongoServer();
process.exit(0);
