import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ContainerRegistry } from '../../src/catalog/model.js';
import { EmbeddedDatabase } from '../../src/catalog/store/embedded-collection.js';
import { openRegistryStore } from '../../src/catalog/store/registry-store.js';
import { CLI, spawnCli, type CliProcess } from '../helpers/spawn-cli.js';

/**
 * A damaged embedded database is never "ready": damage found at start stops `serve` with one
 * line saying to restore from a backup; damage found while serving fails `/readyz` and every
 * further statement (503). `backup --to FILE` makes the backup, and restoring it works.
 */

const DOCUMENTS = 3_000;
const ENV = { PORT: '0', HEALTH_MONITOR_ENABLED: 'false' };

function registry(n: number): ContainerRegistry {
  return {
    container_registry_id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    container_registry_name: `registry-${n}`,
    container_registry_metadata: { note: `entry ${n} `.repeat(20) },
    container_registry_tags: ['integrity'],
    container_registry_public_url: `http://registry-${n}.example.test:5000`,
    container_registry_image_prefix: '',
    container_registry_config: {},
    container_registry_storage_info: {},
  };
}

async function seed(dataDir: string): Promise<void> {
  const database = await EmbeddedDatabase.open(dataDir);
  database.db.pragma('synchronous = OFF');
  const store = await openRegistryStore(database, 'registries');
  for (let n = 0; n < DOCUMENTS; n++) await store.create(registry(n));
  await store.close(); // checkpoints: everything is in catalog.db, the WAL is gone
}

/** Overwrites pages in the middle of the file with random bytes, as a failing disk would. */
function damageMiddle(file: string): void {
  const pages = Math.floor(statSync(file).size / 4096);
  const fd = openSync(file, 'r+');
  try {
    for (let page = Math.floor(pages / 3); page < Math.floor(pages / 3) + 8; page++)
      writeSync(fd, randomBytes(4096), 0, 4096, page * 4096);
  } finally {
    closeSync(fd);
  }
}

async function expectRefusedStart(dataDir: string, message: RegExp): Promise<void> {
  const cli = spawnCli(['serve'], { ...ENV, DATA_DIR: dataDir });
  const { code } = await cli.exited;
  const lines = cli.stderr().trim().split('\n');
  expect(code, cli.stderr()).to.equal(3);
  expect(lines, cli.stderr()).to.have.length(1);
  expect(lines[0]).to.match(message);
  expect(lines[0]).to.match(/restore it from a backup/);
}

describe('embedded store integrity', function () {
  this.timeout(120_000);
  let dataDir: string;
  let cli: CliProcess | undefined;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'catalog-integrity-'));
  });
  afterEach(async () => {
    cli?.child.kill('SIGKILL');
    await cli?.exited;
    cli = undefined;
    await rm(dataDir, { recursive: true, force: true });
  });

  it('stops start-up on a database damaged mid-file', async () => {
    await seed(dataDir);
    damageMiddle(path.join(dataDir, 'catalog.db'));
    await expectRefusedStart(dataDir, /catalog\.db is damaged/);
  });

  it('stops start-up on a zero-byte database where a catalog was', async () => {
    writeFileSync(path.join(dataDir, 'catalog.db'), '');
    await expectRefusedStart(dataDir, /is empty \(0 bytes\)/);
  });

  it('stops start-up on a write-ahead log that does not belong to the database', async () => {
    await seed(dataDir);
    const wal = path.join(dataDir, 'catalog.db-wal');
    writeFileSync(wal, randomBytes(4096 + 56));
    await expectRefusedStart(dataDir, /catalog\.db-wal does not belong .*not a SQLite write-ahead log/);
    // A real log, but of a database with another page size.
    const other = path.join(dataDir, 'other');
    await mkdir(other);
    const script = `const D=require('better-sqlite3');const d=new D(${JSON.stringify(path.join(other, 'x.db'))});d.pragma('page_size=1024');d.pragma('journal_mode=WAL');d.pragma('wal_autocheckpoint=0');d.exec('create table t(x)');d.prepare('insert into t values (?)').run('y');require('fs').copyFileSync(${JSON.stringify(path.join(other, 'x.db-wal'))}, ${JSON.stringify(wal)});process.exit(0);`;
    expect(spawnSync(process.execPath, ['-e', script], { cwd: process.cwd() }).status).to.equal(0);
    await expectRefusedStart(dataDir, /page size \(1024\) is not the database's \(4096\)/);
  });

  /** Starts `serve` on `dir`, creates `names` through the API, then kills it: its WAL stays. */
  async function crashAfterWrites(dir: string, from: number, count: number): Promise<void> {
    const server = spawnCli(['serve'], { ...ENV, DATA_DIR: dir });
    const url = String((await server.waitForLog((line) => line.msg === 'catalog listening')).url);
    for (let n = from; n < from + count; n++) {
      const res = await fetch(`${url}/container_registry`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(registry(n)),
      });
      expect(res.status).to.equal(201);
    }
    server.child.kill('SIGKILL');
    await server.exited;
    expect(statSync(path.join(dir, 'catalog.db-wal')).size).to.be.greaterThan(0);
  }

  async function countOf(dir: string): Promise<string | null> {
    cli = spawnCli(['serve'], { ...ENV, DATA_DIR: dir });
    const url = String((await cli.waitForLog((line) => line.msg === 'catalog listening')).url);
    const res = await fetch(`${url}/container_registries?limit=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    cli.child.kill('SIGKILL');
    await cli.exited;
    cli = undefined;
    return res.headers.get('x-total-count');
  }

  it('stops start-up on a well-formed WAL of another catalog, and replays its own after a kill', async () => {
    const other = await mkdtemp(path.join(tmpdir(), 'catalog-integrity-other-'));
    try {
      await seed(dataDir);
      await seed(other);
      await crashAfterWrites(other, DOCUMENTS, 5);
      await writeFile(
        path.join(dataDir, 'catalog.db-wal'),
        await readFile(path.join(other, 'catalog.db-wal')),
      );
      await expectRefusedStart(dataDir, /catalog\.db-wal does not belong .*another catalog/);
      // The other catalog's own log, killed mid-flight, is its own: all its writes are back.
      expect(await countOf(other)).to.equal(String(DOCUMENTS + 5));
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('stops start-up on a WAL left from before a restore, and starts once it is deleted as told', async () => {
    await seed(dataDir);
    const backup = path.join(dataDir, 'backup.db');
    const made = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'backup', '--to', backup], {
      env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir },
      encoding: 'utf8',
    });
    expect(made.status, made.stderr).to.equal(0);
    await crashAfterWrites(dataDir, DOCUMENTS, 5);
    // The operator restores catalog.db and forgets the -wal and -shm beside it.
    await writeFile(path.join(dataDir, 'catalog.db'), await readFile(backup));
    await expectRefusedStart(
      dataDir,
      /catalog\.db-wal does not belong .*before a restore.*delete .*catalog\.db-wal/,
    );
    await rm(path.join(dataDir, 'catalog.db-wal'));
    await rm(path.join(dataDir, 'catalog.db-shm'), { force: true });
    expect(await countOf(dataDir)).to.equal(String(DOCUMENTS));
  });

  it('fails /readyz and refuses writes once damage is found while serving', async () => {
    await seed(dataDir);
    cli = spawnCli(['serve'], { ...ENV, DATA_DIR: dataDir });
    const url = String((await cli.waitForLog((line) => line.msg === 'catalog listening')).url);
    expect((await fetch(`${url}/readyz`)).status).to.equal(200);
    damageMiddle(path.join(dataDir, 'catalog.db'));
    const scan = await fetch(`${url}/container_registries?limit=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ 'container_registry_metadata.note': { $regex: 'nowhere' } }),
    });
    expect(scan.status).to.equal(503);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).to.equal(503);
    const write = await fetch(`${url}/container_registry`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...registry(DOCUMENTS + 1) }),
    });
    expect(write.status).to.equal(503);
    expect(((await write.json()) as { error: string }).error).to.match(/restore it from a backup/);
  });

  it('backs up while serving, with the other files of the data directory, and the backup restores', async () => {
    await seed(dataDir);
    await writeFile(path.join(dataDir, 'credentials.key'), 'generated-key\n');
    cli = spawnCli(['serve'], { ...ENV, DATA_DIR: dataDir });
    const url = String((await cli.waitForLog((line) => line.msg === 'catalog listening')).url);
    const backup = path.join(dataDir, '..', `${path.basename(dataDir)}-backup.db`);
    const made = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'backup', '--to', backup], {
      env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir },
      encoding: 'utf8',
    });
    expect(made.status, made.stderr).to.equal(0);
    expect(JSON.parse(made.stdout)).to.include({ database: backup });
    expect((await fetch(`${url}/readyz`)).status).to.equal(200);
    cli.child.kill('SIGKILL');
    await cli.exited;

    // Restore: stop the server, replace the data directory's files with the backup's.
    const restored = await mkdtemp(path.join(tmpdir(), 'catalog-restored-'));
    try {
      await writeFile(path.join(restored, 'catalog.db'), await readFile(backup));
      await writeFile(
        path.join(restored, 'credentials.key'),
        await readFile(path.join(`${backup}.files`, 'credentials.key')),
      );
      cli = spawnCli(['serve'], { ...ENV, DATA_DIR: restored });
      const restoredUrl = String((await cli.waitForLog((line) => line.msg === 'catalog listening')).url);
      const count = await fetch(`${restoredUrl}/container_registries?limit=1`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(count.headers.get('x-total-count')).to.equal(String(DOCUMENTS));
    } finally {
      await rm(restored, { recursive: true, force: true });
      await rm(backup, { force: true });
      await rm(`${backup}.files`, { recursive: true, force: true });
    }
  });
});
