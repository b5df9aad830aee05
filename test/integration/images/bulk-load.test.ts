import { expect } from 'chai';
import { statSync } from 'node:fs';
import path from 'node:path';
import type { ContainerImage } from '../../../src/catalog/model.js';
import { EmbeddedDatabase } from '../../../src/catalog/store/embedded-collection.js';
import { openRepositories } from '../../../src/catalog/store/open-stores.js';
import { SEAL_WAL_BYTES } from '../../../src/catalog/store/sqlite-wal-lineage.js';
import { tempDirPerTest } from '../../helpers/temp-dirs.js';

/**
 * A bulk load of image records on the embedded store (an import, the 1M-record benchmark) is a
 * loop of batches that never waits for I/O. It must still let the event loop run between
 * batches: the store's WAL checkpoints are scheduled there (without them a 1M load grew an
 * 11 GB WAL), and so are other clients' requests.
 */

const RECORDS = 40_000;

function image(n: number): ContainerImage {
  const digest = `sha256:${n.toString(16).padStart(64, '0')}`;
  return {
    container_registry_id: '00000000-0000-4000-8000-000000000001',
    repository: `team-${n % 20}/app-${Math.floor(n / 10)}`,
    tag: `v${n % 10}`,
    digest,
    media_type: 'application/vnd.oci.image.manifest.v1+json',
    platforms: [{ os: 'linux', architecture: 'amd64', digest }],
    size: 10_000_000 + n,
    pull_reference: `mirror.example.test/team-${n % 20}/app-${Math.floor(n / 10)}:v${n % 10}`,
    referrers: { signatures: 0, sboms: 0, attestations: 0, other: 0, artifact_types: [] },
    first_seen: '2026-12-02T00:00:00.000Z',
    last_seen: '2026-12-02T00:00:00.000Z',
    source: 'crawl',
  } as ContainerImage;
}

describe('bulk load of image records (embedded store)', function () {
  this.timeout(120_000);
  const dir = tempDirPerTest('bulk-load-');

  it('keeps the WAL checkpointed and the event loop turning while it loads', async () => {
    const database = await EmbeddedDatabase.open(dir());
    const stores = await openRepositories(database, 'registries', '');
    const wal = path.join(dir(), 'catalog.db-wal');
    let largestWal = 0;
    let ticks = 0;
    const watcher = setInterval(() => {
      ticks++;
      largestWal = Math.max(largestWal, statSync(wal, { throwIfNoEntry: false })?.size ?? 0);
    }, 1);
    try {
      const records = Array.from({ length: RECORDS }, (_, n) => image(n));
      expect(await stores.imageStore.insertMany(records)).to.equal(RECORDS);
      largestWal = Math.max(largestWal, statSync(wal, { throwIfNoEntry: false })?.size ?? 0);
    } finally {
      clearInterval(watcher);
      await database.close();
    }
    // One batch's worth over the threshold at most; the load writes ~15x the threshold in all.
    expect(largestWal, `largest WAL ${largestWal} bytes`).to.be.below(4 * SEAL_WAL_BYTES);
    expect(ticks, 'timer ticks during the load').to.be.greaterThan(10);
  });
});
