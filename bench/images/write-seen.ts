/**
 * The write side of a recrawl: `node --import tsx bench/images/write-seen.ts [--records 10000]
 * [--store embedded|mongo]`. Stores `records` image records, then times `ImageStore.writeSeen`
 * of the same records with a new `last_seen` (what `ImageService` writes after a recrawl of
 * unchanged content), twice, and prints the wall time and the records written per second.
 */
import { parseArgs } from 'node:util';
import type { SeenImage } from '../../src/catalog/store/image-store.js';
import { openTestStore, type StoreKind } from '../../test/helpers/catalog.js';
import { stopMongoServer } from '../../test/helpers/mongo-server.js';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '10000' },
    store: { type: 'string', default: 'embedded' },
  },
});
const RECORDS = Number(values.records);

const record = (i: number, seenAt: string): SeenImage => ({
  container_registry_id: '00000000-0000-4000-8000-000000000001',
  repository: `team/app-${Math.floor(i / 10)}`,
  tag: `v${i % 10}`,
  digest: `sha256:${String(i).padStart(64, '0')}`,
  media_type: 'application/vnd.oci.image.manifest.v1+json',
  platforms: [{ os: 'linux', architecture: 'amd64', digest: `sha256:${String(i).padStart(64, '0')}` }],
  size: 1000 + i,
  pull_reference: `registry.test/team/app-${Math.floor(i / 10)}:v${i % 10}`,
  referrers: { signatures: 0, sboms: 0, attestations: 0, other: 0, artifact_types: [] },
  referrers_read_at: seenAt,
  first_seen: seenAt,
  last_seen: seenAt,
  source: 'crawl',
});

const opened = await openTestStore(values.store as StoreKind);
try {
  const first = new Date().toISOString();
  await opened.imageStore.insertMany(Array.from({ length: RECORDS }, (_, i) => record(i, first)));
  console.log(`# writeSeen of ${RECORDS} unchanged records, store ${values.store}, node ${process.version}`);
  for (let round = 1; round <= 2; round++) {
    const seenAt = new Date(Date.now() + round * 1000).toISOString();
    const records = Array.from({ length: RECORDS }, (_, i) => ({ ...record(i, seenAt), first_seen: seenAt }));
    const start = performance.now();
    const counts = await opened.imageStore.writeSeen(records);
    const ms = performance.now() - start;
    console.log(
      `round ${round}: ${Math.round(ms)} ms, ${Math.round(RECORDS / (ms / 1000))} records/s (added ${counts.added}, updated ${counts.updated})`,
    );
  }
} finally {
  await opened.cleanup();
  await stopMongoServer();
}
