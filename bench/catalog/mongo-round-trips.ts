/**
 * Round trips to MongoDB/FerretDB per catalog request: a loopback TCP proxy between the catalog
 * and FerretDB (or `MONGODB_URI`) reads each OP_MSG the driver sends and counts it by command
 * name. The catalog runs in-process on 1,000 documents (bench/catalog/documents.ts); each row
 * is one request type, repeated, with the commands it cost on average.
 *
 *   node --import tsx bench/catalog/mongo-round-trips.ts [repeats]
 */
import net from 'node:net';
import { startCatalog } from '../../test/helpers/catalog.js';
import { getMongoUri, stopMongoServer } from '../../test/helpers/mongo-server.js';
import { documentAt, idAt, TAGS } from './documents.js';

const repeats = Number(process.argv[2] ?? 20);
const upstream = new URL(await getMongoUri());
const counts = new Map<string, number>();

/** The first key of an OP_MSG's body section is the command name (MongoDB wire protocol). */
function commandName(message: Buffer): string | undefined {
  if (message.readInt32LE(12) !== 2013) return undefined; // OP_MSG
  let at = 16 + 4; // header, flagBits
  if (message[at] !== 0) return undefined; // body section first
  at += 1 + 4 + 1; // kind, document length, element type
  return message.toString('latin1', at, message.indexOf(0, at));
}

const proxy = net.createServer((client) => {
  const server = net.connect(Number(upstream.port), upstream.hostname);
  let pending = Buffer.alloc(0);
  client.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4 && pending.length >= pending.readInt32LE(0)) {
      const length = pending.readInt32LE(0);
      const name = commandName(pending.subarray(0, length));
      if (name) counts.set(name, (counts.get(name) ?? 0) + 1);
      pending = pending.subarray(length);
    }
    server.write(chunk);
  });
  server.pipe(client);
  client.on('error', () => server.destroy());
  server.on('error', () => client.destroy());
  client.on('close', () => server.destroy());
});
await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
process.env.MONGODB_URI = `mongodb://127.0.0.1:${(proxy.address() as net.AddressInfo).port}/`;

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
proxy.close();
await stopMongoServer();
process.exit(0);
