/**
 * The `$in` query on MongoDB/FerretDB at the store, four clients for 10 s per row, in one run: our
 * page with its total in one pass (`findPage`), the original AIOS service's query (one `find`, every
 * match, no count; it cannot run here, so its work is reproduced through the driver), one sorted
 * find (our unpaged answer), and the page plus a separate count (before issue 13's fix). Then the
 * spread update, as the store does it (get, then compare-and-swap) and as the original did
 * (one `update_one` by `container_registry_id`).
 *
 *   node --import tsx bench/catalog/mongo-query-passes.ts [clients] [only rows whose name has this]
 */
import { openMongoTestStore } from '../../test/helpers/catalog.js';
import { MongoDatabase } from '../../src/catalog/store/mongo-collection.js';
import { documentAt, idAt, TAGS } from './documents.js';
import { stopMongoServer } from '../../test/helpers/mongo-server.js';
const s = await openMongoTestStore(`bench_q_${Date.now()}`);
const db = (s.database as MongoDatabase).db;
await db
  .collection('container_registry')
  .insertMany(Array.from({ length: 1000 }, (_, i) => ({ ...documentAt(i), _version: 1 })));
const filter = { container_registry_tags: { $in: [TAGS[0], 't7'] } };
const page = { sort: [] as never, skip: 0, limit: 100 };
const raw = db.collection('container_registry');
const rows: Record<string, () => Promise<unknown>> = {
  'after (findPage, one pass)': () => s.store.findPage(filter, page),
  'original (one find, all matches)': () => raw.find(filter).toArray(),
  'after unpaged-like (one sorted find)': () => raw.find(filter).sort({ container_registry_id: 1 }).toArray(),
  'before (find page + count)': () => Promise.all([s.store.find(filter, page), s.store.count(filter)]),
  'ours: $set (get + replaceIfVersion)': async () => {
    const id = idAt(Math.floor(Math.random() * 1000));
    const current = (await s.store.get(id))!;
    const metadata = { ...current.document.container_registry_metadata, owner: `o${Math.random()}` };
    await s.store.replaceIfVersion(
      { ...current.document, container_registry_metadata: metadata },
      current.version,
    );
  },
  'original: $set (one update_one)': () =>
    raw.updateOne(
      { container_registry_id: idAt(Math.floor(Math.random() * 1000)) },
      { $set: { 'container_registry_metadata.owner': `o${Math.random()}` } },
    ),
};
const clients = Number(process.argv[2] ?? 4);
await s.store.find({}, { sort: [], skip: 0, limit: 1000 }); // the store learns every _id, as at start
for (let round = 0; round < 1; round++)
  for (const [name, fn] of Object.entries(rows).filter(([name]) => name.includes(process.argv[3] ?? ''))) {
    let done = 0;
    let errors = 0;
    const end = performance.now() + 10000;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < end) {
          try {
            await fn();
            if (performance.now() <= end) done++;
          } catch {
            errors++;
          }
        }
      }),
    );
    console.log(name.padEnd(36), (done / 10).toFixed(2), 'req/s', errors, 'errors');
  }
await s.cleanup();
await stopMongoServer();
process.exit(0);
