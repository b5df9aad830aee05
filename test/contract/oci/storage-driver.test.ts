/**
 * The contract every registry `StorageDriver` must keep (one suite, run on each implementation;
 * today the filesystem driver). The registry's atomicity and crash-safety rest on these rules.
 */
import fs from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect } from 'chai';
import type { StorageDriver } from '../../../src/oci/storage/driver.js';
import { FsDriver } from '../../../src/oci/storage/fs-driver.js';
import { tempDir } from '../../helpers/temp-dirs.js';

interface DriverFactory {
  readonly name: string;
  create(): Promise<{ driver: StorageDriver; dispose(): Promise<void> }>;
}

const IMPLEMENTATIONS: DriverFactory[] = [
  {
    name: 'FsDriver',
    create: async () => {
      const root = await tempDir('driver-contract-');
      return { driver: new FsDriver(root), dispose: () => fs.rm(root, { recursive: true, force: true }) };
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
    let dispose: () => Promise<void>;
    beforeEach(async () => {
      ({ driver, dispose } = await implementation.create());
    });
    afterEach(async () => dispose());

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
  });
}
