import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { AppendStream, FileInfo, ReadableFile, StorageDriver, WriteOptions } from './driver.js';
import { TMP_DIR } from './layout.js';

/** Read streams hand out 1 MiB chunks: fewer syscalls and event-loop turns per blob. */
const READ_CHUNK = 1024 * 1024;
/**
 * Upload writes are batched up to this much: the 64 KiB chunks a socket delivers are gathered
 * into one `writev` (one thread-pool hop) per few MiB instead of one per chunk.
 */
const WRITE_BATCH = 4 * 1024 * 1024;
/**
 * Bytes written between background `fdatasync`s of an upload: the disk writes back while the
 * rest arrives, so the fsync that makes the upload durable at the end waits for a tail of at
 * most this much instead of the whole blob (a 256 MiB layer would otherwise stall there).
 */
const SYNC_EVERY = 32 * 1024 * 1024;

/**
 * A write stream over an open file: batched positional `writev`s and background data syncs; no
 * fsync of its own at the end. An upload's file becomes durable once, when it is committed:
 * `move` fsyncs it before the rename (so a chunked upload pays one fsync, not one per PATCH). A
 * chunk acknowledged but not yet committed may be lost to a power failure, never to a killed
 * process (the page cache keeps it); the client then finds a shorter Range or gets
 * DIGEST_INVALID, and nothing unverified ever becomes visible.
 */
class DurableFileWriter extends Writable {
  private unsynced = 0;
  private syncing: Promise<void> | undefined;
  /** A background sync's failure, reported at the end (Linux may report it to one fsync only). */
  private syncError: unknown;

  constructor(
    private readonly handle: fs.FileHandle,
    private position: number,
  ) {
    super({ highWaterMark: WRITE_BATCH });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => callback(), callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.writeAll(chunks.map((entry) => entry.chunk)).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    const close = async () => {
      await this.syncing;
      if (this.syncError !== undefined) throw this.syncError;
      await this.handle.close();
    };
    close().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // After _final the handle is closed already; closing twice only rejects, which we ignore.
    this.handle.close().then(
      () => callback(error),
      () => callback(error),
    );
  }

  private async writeAll(buffers: Buffer[]): Promise<void> {
    let pending = buffers;
    let total = pending.reduce((sum, buffer) => sum + buffer.length, 0);
    while (total > 0) {
      const { bytesWritten } = await this.handle.writev(pending, this.position);
      this.position += bytesWritten;
      this.unsynced += bytesWritten;
      total -= bytesWritten;
      if (total > 0) pending = skip(pending, bytesWritten); // short write: continue after it
    }
    if (this.unsynced >= SYNC_EVERY && this.syncing === undefined) {
      this.unsynced = 0;
      this.syncing = this.handle.datasync().finally(() => (this.syncing = undefined));
      this.syncing.catch((error: unknown) => (this.syncError ??= error));
    }
  }
}

/** `buffers` without their first `count` bytes. */
function skip(buffers: Buffer[], count: number): Buffer[] {
  const rest: Buffer[] = [];
  let left = count;
  for (const buffer of buffers) {
    if (left >= buffer.length) left -= buffer.length;
    else {
      rest.push(left > 0 ? buffer.subarray(left) : buffer);
      left = 0;
    }
  }
  return rest;
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * The filesystem driver: every path is joined under `root`, which must be one filesystem so that
 * rename is atomic. Callers pass only paths built by `layout.ts` from validated names.
 */
export class FsDriver implements StorageDriver {
  readonly root: string;
  constructor(root: string) {
    this.root = path.resolve(root);
  }

  private abs(relative: string): string {
    return path.join(this.root, relative);
  }

  async stat(relative: string): Promise<FileInfo | undefined> {
    try {
      const info = await fs.stat(this.abs(relative));
      return { size: info.size, mtimeMs: info.mtimeMs, isDirectory: info.isDirectory() };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async readFile(relative: string): Promise<Buffer | undefined> {
    try {
      return await fs.readFile(this.abs(relative));
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async writeFile(relative: string, content: Uint8Array | string, options?: WriteOptions): Promise<void> {
    const durable = options?.durable ?? true;
    const tmp = path.join(TMP_DIR, randomUUID());
    const handle = await this.openCreatingParents(tmp, 'w');
    try {
      await handle.writeFile(content);
      if (durable) await handle.sync();
    } finally {
      await handle.close();
    }
    await this.rename(tmp, relative, durable);
  }

  async createExclusive(relative: string, content: string): Promise<boolean> {
    let handle: fs.FileHandle;
    try {
      handle = await this.openCreatingParents(relative, 'wx');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
    try {
      await handle.writeFile(content);
    } finally {
      await handle.close();
    }
    return true;
  }

  async touch(relative: string): Promise<void> {
    const handle = await this.openCreatingParents(relative, 'a');
    const now = new Date();
    try {
      await handle.utimes(now, now);
    } finally {
      await handle.close();
    }
  }

  async refresh(relative: string): Promise<boolean> {
    const now = new Date();
    try {
      await fs.utimes(this.abs(relative), now, now);
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
  }

  readStream(relative: string, start?: number, end?: number): Readable {
    return createReadStream(this.abs(relative), { start, end, highWaterMark: READ_CHUNK });
  }

  async openRead(relative: string): Promise<ReadableFile | undefined> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.abs(relative), 'r');
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    const { size } = await handle.stat();
    return {
      size,
      read: async (buffer, position) => (await handle.read(buffer, 0, buffer.length, position)).bytesRead,
      close: () => handle.close(),
    };
  }

  async appendStream(relative: string, offset: number): Promise<AppendStream> {
    const target = this.abs(relative);
    await fs.mkdir(path.dirname(target), { recursive: true });
    // At offset 0 the file is new (or empty); later chunks write into it in place.
    const handle = await fs.open(target, offset === 0 ? 'w' : 'r+');
    const stream = new DurableFileWriter(handle, offset);
    const done = finished(stream);
    // Keep an unobserved rejection from crashing the process; callers await `done` themselves.
    done.catch(() => undefined);
    return { stream, done, releasesOnCallback: true };
  }

  async list(relative: string): Promise<string[]> {
    try {
      return (await fs.readdir(this.abs(relative))).sort();
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
  }

  async move(from: string, to: string): Promise<void> {
    // Appended files are not fsynced while they grow (DurableFileWriter): their one fsync is
    // here, before they become visible under their new name.
    const handle = await fs.open(this.abs(from), 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.rename(from, to, true);
  }

  private async rename(from: string, to: string, durable: boolean): Promise<void> {
    const target = this.abs(to);
    try {
      await fs.rename(this.abs(from), target);
    } catch (error) {
      if (!isMissing(error)) throw error;
      await fs.mkdir(path.dirname(target), { recursive: true });
      await fs.rename(this.abs(from), target);
    }
    if (durable) await this.syncDirectory(path.dirname(target));
  }

  async delete(relative: string): Promise<void> {
    await fs.rm(this.abs(relative), { recursive: true, force: true });
  }

  async pruneEmptyDirectories(relative: string, stopAt: string): Promise<void> {
    let current = relative;
    while (current !== stopAt && current.startsWith(`${stopAt}/`)) {
      try {
        await fs.rmdir(this.abs(current));
      } catch {
        return; // not empty (or already gone): stop climbing
      }
      current = path.posix.dirname(current);
    }
  }

  private async openCreatingParents(relative: string, flags: string | number): Promise<fs.FileHandle> {
    const target = this.abs(relative);
    try {
      return await fs.open(target, flags);
    } catch (error) {
      if (!isMissing(error)) throw error;
      await fs.mkdir(path.dirname(target), { recursive: true });
      return fs.open(target, flags);
    }
  }

  /** Makes a rename durable: the directory entry itself is flushed. */
  private async syncDirectory(directory: string): Promise<void> {
    const handle = await fs.open(directory, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}
