/**
 * Catalog benchmark: requests/s and p50/p99 of get-by-id, create, `$set` update and a `$in`
 * query (limit=100) at 1k and 100k documents, on the embedded store and on MongoDB (FerretDB
 * unless MONGODB_URI is set), beside a bare node:http server answering the same JSON: the
 * ceiling. Same load generator, connections and duration for every row.
 *
 *   npm run bench -- catalog [--sizes 1000,100000] [--duration 5] [--stores embedded,mongo]
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createCatalog } from '../../src/catalog/app.js';
import type { ContainerRegistry, RegistryStore } from '../../src/catalog/store/registry-store.js';
import { createLogger } from '../../src/shared/logger.js';
import { SchemaSet } from '../../src/shared/schemas.js';
import { listen } from '../../src/shared/server.js';
import { openTestStore, STORE_KINDS, type StoreKind } from '../../test/helpers/catalog.js';
import { stopMongoServer } from '../../test/helpers/mongo-server.js';
import { formatRow, load, type LoadResult } from '../lib/load.js';

const TAGS = [
  'ai',
  'training',
  'internal',
  'fast-pull',
  'gpu',
  'cpu',
  'edge',
  'prod',
  'dev',
  'eu',
  'us',
  'asia',
];

function documentAt(i: number): ContainerRegistry {
  return {
    container_registry_id: randomUUID(),
    container_registry_name: `registry-${i}`,
    container_registry_metadata: {
      environment: i % 3 === 0 ? 'production' : 'dev',
      owner: `team-${i % 50}`,
      index: i,
    },
    // Each tag pair selects about 1/66 of the documents, so a $in query has many matches.
    container_registry_tags: [TAGS[i % TAGS.length]!, TAGS[(i * 7 + 3) % TAGS.length]!, `t${i % 1000}`],
    container_registry_public_url: `http://registry-${i}.example.test:5000`,
    container_registry_image_prefix: `registry-${i}.example.test:5000`,
    container_registry_config: { auth_required: i % 2 === 0 },
    container_registry_storage_info: {
      storage_type: 'fs',
      storage_size: -1,
      memory_size: 8192,
      registry_type: 'aios',
    },
  };
}

async function seed(store: RegistryStore, count: number): Promise<string[]> {
  const ids: string[] = [];
  const batch = 64;
  for (let start = 0; start < count; start += batch) {
    const docs = Array.from({ length: Math.min(batch, count - start) }, (_, j) => documentAt(start + j));
    await Promise.all(docs.map((doc) => store.create(doc)));
    ids.push(...docs.map((doc) => doc.container_registry_id));
  }
  return ids;
}

async function ceiling(durationSeconds: number): Promise<LoadResult> {
  const body = JSON.stringify({ success: true, data: documentAt(1) });
  const server = http.createServer((_req, res) => {
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  try {
    return await load({ url: `http://127.0.0.1:${port}`, durationSeconds });
  } finally {
    server.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((arg) => arg !== 'catalog'),
    options: {
      sizes: { type: 'string', default: '1000,100000' },
      duration: { type: 'string', default: '5' },
      stores: { type: 'string', default: STORE_KINDS.join(',') },
    },
  });
  const sizes = values.sizes.split(',').map(Number);
  const durationSeconds = Number(values.duration);
  const kinds = values.stores.split(',') as StoreKind[];
  const widths = [10, 8, 12, 12, 9, 9, 8, 10];
  const print = (cells: Array<string | number>) => console.log(formatRow(cells, widths));

  const bare = await ceiling(durationSeconds);
  console.log(`# catalog bench: 16 connections, ${durationSeconds}s per row, node ${process.version}`);
  print(['store', 'docs', 'scenario', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'x ceiling']);
  print([
    'node:http',
    '-',
    'static',
    bare.requestsPerSecond.toFixed(0),
    bare.p50Ms,
    bare.p99Ms,
    bare.errors + bare.non2xx,
    '1.00',
  ]);

  const schemas = new SchemaSet();
  for (const kind of kinds) {
    for (const size of sizes) {
      const { store, cleanup } = await openTestStore(kind);
      const seedStart = Date.now();
      const ids = await seed(store, size);
      const seedSeconds = (Date.now() - seedStart) / 1000;
      const { app } = createCatalog({
        store,
        schemas,
        logger: createLogger('bench', 'silent'),
        bodyLimitBytes: 1 << 20,
      });
      const server = await listen(app, { host: '127.0.0.1', port: 0 });
      const pick = () => ids[Math.floor(Math.random() * ids.length)]!;
      let created = size;
      const scenarios: Array<[string, Parameters<typeof load>[0]]> = [
        ['get-by-id', { url: server.url, next: () => ({ path: `/container_registry/${pick()}` }) }],
        [
          'create',
          {
            url: server.url,
            method: 'POST',
            next: () => ({ path: '/container_registry', body: JSON.stringify(documentAt(created++)) }),
          },
        ],
        [
          '$set',
          {
            url: server.url,
            method: 'PUT',
            next: () => ({
              path: `/container_registry/${pick()}`,
              body: JSON.stringify({ $set: { 'container_registry_metadata.owner': `o${Math.random()}` } }),
            }),
          },
        ],
        [
          '$in q100',
          {
            url: server.url,
            method: 'POST',
            next: () => ({
              path: '/container_registries?limit=100',
              body: JSON.stringify({
                container_registry_tags: { $in: [TAGS[Math.floor(Math.random() * TAGS.length)], 't7'] },
              }),
            }),
          },
        ],
      ];
      console.log(
        `# ${kind} store, ${size} documents seeded in ${seedSeconds.toFixed(1)} s (${(size / seedSeconds).toFixed(0)} docs/s through the store)`,
      );
      for (const [name, options] of scenarios) {
        const result = await load({ ...options, durationSeconds });
        print([
          kind,
          size,
          name,
          result.requestsPerSecond.toFixed(0),
          result.p50Ms,
          result.p99Ms,
          result.errors + result.non2xx,
          (result.requestsPerSecond / bare.requestsPerSecond).toFixed(2),
        ]);
      }
      await server.close();
      await cleanup();
    }
  }
  await stopMongoServer();
}

await main();
