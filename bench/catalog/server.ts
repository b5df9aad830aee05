/**
 * One benchmark target in its own process (so the load generator gets the other core), with
 * access control and the rate limiter on as deployed (see BENCH_TOKEN):
 *   node --import tsx bench/catalog/server.ts <embedded|mongo|ceiling> <documents>
 * Seeds the store, serves the catalog on a loopback port and prints {"url", "seedSeconds"}.
 */
import http from 'node:http';
import express from 'express';
import { createCatalog } from '../../src/catalog/app.js';
import type { DocumentDatabase } from '../../src/catalog/store/collection.js';
import { EmbeddedDatabase } from '../../src/catalog/store/embedded-collection.js';
import { MongoDatabase } from '../../src/catalog/store/mongo-collection.js';
import type { RegistryStore } from '../../src/catalog/store/registry-store.js';
import { createLogger } from '../../src/shared/logger.js';
import { SchemaSet } from '../../src/shared/schemas.js';
import { listen } from '../../src/shared/server.js';
import { openMongoTestStore, openTestStore, type StoreKind } from '../../test/helpers/catalog.js';
import { stopMongoServer } from '../../test/helpers/mongo-server.js';
import { AccessPolicy } from '../../src/catalog/access/policy.js';
import { hashToken } from '../../src/catalog/access/tokens.js';
import { BENCH_TOKEN, documentAt } from './documents.js';

const [kind = 'embedded', countText = '1000'] = process.argv.slice(2);
const count = Number(countText);

async function seed(store: RegistryStore, database: DocumentDatabase): Promise<void> {
  const batch = 500;
  for (let start = 0; start < count; start += batch) {
    const docs = Array.from({ length: Math.min(batch, count - start) }, (_, j) => documentAt(start + j));
    if (database instanceof MongoDatabase) {
      // Bench-only shortcut: FerretDB takes ~3 ms per single insert, so 100k documents go in bulk
      // in the stored shape (the original AIOS layout: the eight fields, an ObjectId _id the
      // driver adds, _version = 1) instead of one create() each.
      await database.db
        .collection('container_registry')
        .insertMany(docs.map((doc) => ({ ...doc, _version: 1 })));
    } else {
      for (const doc of docs) await store.create(doc);
    }
  }
}

if (kind === 'express') {
  // The framework's own ceiling: Express 5 answering the same JSON from one route.
  const body = { success: true, data: documentAt(1) };
  const app = express();
  app.get('/container_registry/:id', (_req, res) => {
    res.json(body);
  });
  const server = await listen(app, { host: '127.0.0.1', port: 0 });
  console.log(JSON.stringify({ url: server.url, seedSeconds: 0 }));
} else if (kind === 'ceiling') {
  // Exit on SIGTERM (rather than die of it) so `node --cpu-prof` writes its profile.
  process.once('SIGTERM', () => process.exit(0));
  const body = JSON.stringify({ success: true, data: documentAt(1) });
  const server = http.createServer((_req, res) => {
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  });
  server.listen(0, '127.0.0.1', () => {
    console.log(
      JSON.stringify({
        url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
        seedSeconds: 0,
      }),
    );
  });
} else {
  const seeded = await openTestStore(kind as StoreKind);
  const started = Date.now();
  await seed(seeded.store, seeded.database);
  const seedSeconds = (Date.now() - started) / 1000;
  const { database, cleanup } = seeded;
  let store = seeded.store;
  if (database instanceof MongoDatabase) {
    // Serve from a second connection opened on the seeded database, as a catalog (re)started
    // on an existing one is: it learns the entries' _id in the background; wait for that.
    const serving = await openMongoTestStore(database.db.databaseName);
    await (serving.database as MongoDatabase).warmedUp();
    store = serving.store;
  }
  // Steady state, not the seeding's write-ahead log: fold it into the database file.
  if (database instanceof EmbeddedDatabase) database.checkpoint();
  const { handler } = createCatalog({
    store,
    schemas: new SchemaSet(),
    logger: createLogger('bench', 'silent'),
    bodyLimitBytes: 1 << 20,
    access: {
      policy: new AccessPolicy(
        [{ name: 'bench', role: 'admin', sha256: hashToken(BENCH_TOKEN), expiresAt: undefined }],
        false,
      ),
      rateLimitPerSecond: 1_000_000_000,
      healthCheckRateLimitPerMinute: 0,
      corsOrigins: [],
    },
  });
  const server = await listen(handler, { host: '127.0.0.1', port: 0 });
  console.log(JSON.stringify({ url: server.url, seedSeconds }));
  process.once('SIGTERM', () => {
    void server
      .close(1000)
      .then(cleanup)
      .then(stopMongoServer)
      .finally(() => process.exit(0));
  });
}
