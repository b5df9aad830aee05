import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { AppendStream, FileInfo, ReadableFile, StorageDriver } from './driver.js';
import { TMP_DIR } from './layout.js';

/** Read streams hand out 1 MiB chunks: fewer syscalls and event-loop turns per blob. */
const READ_CHUNK = 1024 * 1024;

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

  async writeFile(relative: string, content: Uint8Array | string): Promise<void> {
    const tmp = path.join(TMP_DIR, randomUUID());
    const handle = await this.openCreatingParents(tmp, 'w');
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.move(tmp, relative);
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
    // `flush` fsyncs before the descriptor is closed, so `close` means durable.
    const stream = createWriteStream(target, {
      // At offset 0 the file is new (or empty); later chunks write into it in place.
      flags: offset === 0 ? 'w' : 'r+',
      start: offset,
      flush: true,
      highWaterMark: READ_CHUNK,
    });
    const done = finished(stream);
    // Keep an unobserved rejection from crashing the process; callers await `done` themselves.
    done.catch(() => undefined);
    return { stream, done };
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
    const target = this.abs(to);
    try {
      await fs.rename(this.abs(from), target);
    } catch (error) {
      if (!isMissing(error)) throw error;
      await fs.mkdir(path.dirname(target), { recursive: true });
      await fs.rename(this.abs(from), target);
    }
    await this.syncDirectory(path.dirname(target));
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
