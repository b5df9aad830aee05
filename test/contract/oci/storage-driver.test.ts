/**
 * The contract every registry `StorageDriver` must keep (one suite, run on each implementation:
 * the filesystem driver, and the S3 driver against a real S3 server on loopback). The registry's
 * atomicity, crash-safety and replicas rest on these rules.
 */
import fs from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect } from 'chai';
import type { StorageDriver } from '../../../src/oci/storage/driver.js';
import { FsDriver } from '../../../src/oci/storage/fs-driver.js';
import { S3Driver } from '../../../src/oci/storage/s3-driver.js';
import { startS3Server, type TestS3Server } from '../../helpers/s3-server.js';
import { tempDir } from '../../helpers/temp-dirs.js';

interface DriverInstance {
  readonly driver: StorageDriver;
  /** Another driver on the same storage, as a second replica would open it. */
  replica(): StorageDriver;
  dispose(): Promise<void>;
}

interface DriverFactory {
  readonly name: string;
  create(): Promise<DriverInstance>;
}

let s3: TestS3Server | undefined;
before(async function () {
  this.timeout(120_000); // first run builds gofakes3
  s3 = await startS3Server();
});
after(async () => s3?.stop());

const IMPLEMENTATIONS: DriverFactory[] = [
  {
    name: 'FsDriver',
    create: async () => {
      const root = await tempDir('driver-contract-');
      return {
        driver: new FsDriver(root),
        replica: () => new FsDriver(root),
        dispose: () => fs.rm(root, { recursive: true, force: true }),
      };
    },
  },
  {
    name: 'S3Driver (gofakes3)',
    create: async () => {
      const settings = await s3!.bucket('registry');
      const drivers: S3Driver[] = [new S3Driver(settings)];
      return {
        driver: drivers[0]!,
        replica: () => {
          const driver = new S3Driver(settings);
          drivers.push(driver);
          return driver;
        },
        dispose: async () => drivers.forEach((driver) => driver.client.destroy()),
      };
    },
  },
];

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

for (const implementation of IMPLEMENTATIONS) {
  describe(`registry storage driver contract: ${implementation.name}`, () => {
    let driver: StorageDriver;
    let instance: DriverInstance;
    beforeEach(async () => {
      instance = await implementation.create();
      driver = instance.driver;
    });
    afterEach(async () => instance.dispose());

    it('reports missing paths as undefined or empty, never as errors', async () => {
      expect(await driver.stat('a/b')).to.equal(undefined);
      expect(await driver.readFile('a/b')).to.equal(undefined);
      expect(await driver.openRead('a/b')).to.equal(undefined);
      expect(await driver.list('a')).to.deep.equal([]);
      await driver.delete('a/b');
    });

    it('writes files atomically, creating parents, and replaces them whole', async () => {
      await driver.writeFile('x/y/z', 'first version');
      await driver.writeFile('x/y/z', 'second');
      expect((await driver.readFile('x/y/z'))?.toString()).to.equal('second');
      expect(await driver.stat('x/y/z')).to.include({ size: 6, isDirectory: false });
      expect(await driver.list('_tmp')).to.deep.equal([]);
    });

    it('createExclusive creates a path once: of many concurrent callers on two replicas, exactly one wins', async () => {
      const other = instance.replica();
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          (i % 2 === 0 ? driver : other).createExclusive('claims/x', `c${i}`),
        ),
      );
      expect(results.filter(Boolean)).to.have.length(1);
      const winner = results.indexOf(true);
      expect((await other.readFile('claims/x'))?.toString()).to.equal(`c${winner}`);
      expect(await driver.createExclusive('claims/x', 'late')).to.equal(false);
      await driver.delete('claims/x');
      expect(await other.createExclusive('claims/x', 'again')).to.equal(true);
    });

    it('lists directory entries sorted', async () => {
      for (const name of ['c', 'a', 'b']) await driver.writeFile(`d/${name}`, name);
      expect(await driver.list('d')).to.deep.equal(['a', 'b', 'c']);
    });

    it('touch creates an empty file or refreshes its mtime without changing content', async () => {
      await driver.touch('links/one');
      expect(await driver.stat('links/one')).to.include({ size: 0 });
      await driver.writeFile('links/two', 'keep');
      const before = (await driver.stat('links/two'))!.mtimeMs;
      await new Promise((resolve) => setTimeout(resolve, 20));
      await driver.touch('links/two');
      expect((await driver.readFile('links/two'))?.toString()).to.equal('keep');
      expect((await driver.stat('links/two'))!.mtimeMs).to.be.greaterThan(before);
    });

    it('refresh sets the mtime of an existing file and never creates one', async () => {
      expect(await driver.refresh('blobs/missing')).to.equal(false);
      expect(await driver.stat('blobs/missing')).to.equal(undefined);
      await driver.writeFile('blobs/present', 'bytes');
      const before = (await driver.stat('blobs/present'))!.mtimeMs;
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await driver.refresh('blobs/present')).to.equal(true);
      expect((await driver.stat('blobs/present'))!.mtimeMs).to.be.greaterThan(before);
      expect((await driver.readFile('blobs/present'))?.toString()).to.equal('bytes');
    });

    it('appends at an offset and moves the result into place', async () => {
      const first = await driver.appendStream('up/data', 0);
      await pipeline(Readable.from([Buffer.from('hello ')]), first.stream);
      await first.done;
      const second = await driver.appendStream('up/data', 6);
      await pipeline(Readable.from([Buffer.from('world')]), second.stream);
      await second.done;
      await driver.move('up/data', 'final/place/blob');
      expect(await driver.stat('up/data')).to.equal(undefined);
      expect((await readAll(driver.readStream('final/place/blob', 6, 10))).toString()).to.equal('world');
      const file = await driver.openRead('final/place/blob');
      const buffer = Buffer.alloc(5);
      expect(file?.size).to.equal(11);
      expect(await file?.read(buffer, 0)).to.equal(5);
      expect(buffer.toString()).to.equal('hello');
      await file?.close();
    });

    it('deletes trees and prunes empty parents up to a stop directory only', async () => {
      await driver.writeFile('r/a/b/c/file', 'x');
      await driver.writeFile('r/keep', 'x');
      await driver.delete('r/a/b/c/file');
      await driver.pruneEmptyDirectories('r/a/b/c', 'r');
      expect(await driver.list('r')).to.deep.equal(['keep']);
      await driver.delete('r');
      expect(await driver.stat('r')).to.equal(undefined);
    });

    it('streams byte ranges and reads at any position of a multi-part file', async () => {
      const data = Buffer.alloc(20 * 1024 * 1024 + 13);
      for (let i = 0; i < data.length; i += 4096) data.writeUInt32BE(i, i);
      const upload = await driver.appendStream('up/big', 0);
      await pipeline(Readable.from([data.subarray(0, 9_000_000), data.subarray(9_000_000)]), upload.stream);
      await upload.done;
      await driver.move('up/big', 'blobs/big');
      expect(await driver.stat('blobs/big')).to.include({ size: data.length });
      const middle = await readAll(driver.readStream('blobs/big', 8_388_600, 8_388_700));
      expect(middle.equals(data.subarray(8_388_600, 8_388_701))).to.equal(true);
      const file = (await driver.openRead('blobs/big'))!;
      const buffer = Buffer.alloc(3 * 1024 * 1024);
      let position = 0;
      const copy = Buffer.alloc(data.length);
      for (;;) {
        const bytes = await file.read(buffer, position);
        if (bytes === 0) break;
        buffer.copy(copy, position, 0, bytes);
        position += bytes;
      }
      expect(copy.equals(data)).to.equal(true);
      expect(await file.read(buffer.subarray(0, 10), 4096)).to.equal(10);
      expect(buffer.readUInt32BE(0)).to.equal(4096);
      await file.close();
    });

    it('lists more entries than one listing page holds', async function () {
      this.timeout(60_000);
      const names = Array.from({ length: 1_050 }, (_, i) => `t${String(i).padStart(4, '0')}`);
      for (let i = 0; i < names.length; i += 50) {
        await Promise.all(names.slice(i, i + 50).map((name) => driver.writeFile(`many/${name}`, name)));
      }
      await driver.touch('many/sub/deeper/link');
      expect(await driver.list('many')).to.deep.equal([...names, 'sub'].sort());
      expect(await driver.stat('many/sub')).to.include({ isDirectory: true });
    });

    it('continues a growing file from another replica and moves it from there', async () => {
      const first = await driver.appendStream('uploads/u1/data', 0);
      await pipeline(Readable.from([Buffer.from('from one ')]), first.stream);
      await first.done;
      const replica = instance.replica();
      expect(await replica.stat('uploads/u1/data')).to.include({ size: 9 });
      expect(await replica.list('uploads/u1')).to.deep.equal(['data']);
      const second = await replica.appendStream('uploads/u1/data', 9);
      await pipeline(Readable.from([Buffer.from('and two')]), second.stream);
      await second.done;
      expect(await driver.stat('uploads/u1/data')).to.include({ size: 16 });
      expect((await driver.readFile('uploads/u1/data'))?.toString()).to.equal('from one and two');
      await driver.move('uploads/u1/data', 'blobs/joined');
      expect((await replica.readFile('blobs/joined'))?.toString()).to.equal('from one and two');
      expect(await replica.stat('uploads/u1/data')).to.equal(undefined);
      await replica.delete('uploads/u1');
      expect(await driver.list('uploads')).to.deep.equal([]);
    });

    it('keeps the bytes written before a chunk whose stream failed', async () => {
      const first = await driver.appendStream('uploads/u2/data', 0);
      await pipeline(Readable.from([Buffer.from('complete')]), first.stream);
      await first.done;
      const second = await driver.appendStream('uploads/u2/data', 8);
      const failing = new Readable({ read() {} });
      failing.push(Buffer.alloc(64 * 1024, 1));
      setImmediate(() => failing.destroy(new Error('client went away')));
      await pipeline(failing, second.stream).catch(() => undefined);
      await second.done.catch(() => undefined);
      const size = (await driver.stat('uploads/u2/data'))!.size;
      // fs keeps what reached the file, S3 drops the unfinished segment: never bytes beyond it.
      expect(size).to.be.within(8, 8 + 64 * 1024);
      expect((await driver.readFile('uploads/u2/data'))!.subarray(0, 8).toString()).to.equal('complete');
    });

    it('gives concurrent writers of one path from two replicas one whole value', async () => {
      const replica = instance.replica();
      const values = Array.from({ length: 8 }, (_, i) => `sha256:${String(i).repeat(64)}`);
      await Promise.all(
        values.map((value, i) => (i % 2 === 0 ? driver : replica).writeFile('tags/latest', value)),
      );
      const stored = (await replica.readFile('tags/latest'))?.toString();
      expect(values).to.include(stored);
    });

    it('refresh of a file written by another replica is visible to gc on the first', async () => {
      await driver.writeFile('blobs/shared', 'bytes');
      const before = (await driver.stat('blobs/shared'))!.mtimeMs;
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await instance.replica().refresh('blobs/shared')).to.equal(true);
      expect((await driver.stat('blobs/shared'))!.mtimeMs).to.be.greaterThan(before);
      await driver.delete('blobs/shared');
      expect(await driver.stat('blobs/shared')).to.equal(undefined);
      await driver.writeFile('blobs/shared', 'again');
      expect((await driver.stat('blobs/shared'))!.size).to.equal(5);
    });
  });
}
