/**
 * A local copy of a blob being fetched, for storage that cannot read a file while it grows (S3:
 * an upload is invisible until its multipart upload completes). Clients that join a flight late,
 * or fall behind it, read the bytes already received from here instead of waiting for the whole
 * blob to be stored. Nothing here is durable or visible to the registry: the file lives outside
 * the storage, is written without fsync and is removed when the flight ends (readers that opened
 * it keep reading through their descriptor).
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ReadableFile } from '../storage/driver.js';

/** Writes are gathered up to this much into one `writev`. */
const WRITE_BATCH = 4 * 1024 * 1024;
const PREFIX = 'proxy-spool-';

/** One flight's local copy: appended through `stream`, read by any number of `open()`s. */
export class Spool {
  readonly stream: WriteStream;
  private constructor(readonly file: string) {
    this.stream = createWriteStream(file, { flags: 'wx', highWaterMark: WRITE_BATCH });
    // Errors reach the flight through its own listener; this one only keeps them handled.
    this.stream.on('error', () => undefined);
  }

  /** Creates an empty spool file under `dir` (created when missing). */
  static async create(dir: string): Promise<Spool> {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const spool = new Spool(path.join(dir, `${PREFIX}${randomUUID()}`));
    await new Promise<void>((resolve, reject) => {
      spool.stream.once('ready', resolve);
      spool.stream.once('error', reject);
    });
    return spool;
  }

  /** Opens the file for positional reads of what has been written so far. */
  async open(): Promise<ReadableFile> {
    const handle = await fs.open(this.file, 'r');
    return {
      size: 0, // growing: callers bound their reads by the bytes the flight says are written
      read: async (buffer, position) => (await handle.read(buffer, 0, buffer.length, position)).bytesRead,
      close: () => handle.close(),
    };
  }

  /** Closes the writer and removes the file; readers with it open keep their bytes. */
  async remove(): Promise<void> {
    this.stream.destroy();
    await fs.rm(this.file, { force: true });
  }
}

/** Removes spool files under `dir` last written before `before` (a process killed mid-fetch). */
export async function purgeSpools(dir: string, before: number): Promise<number> {
  let purged = 0;
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(PREFIX)) continue;
    const file = path.join(dir, name);
    const stat = await fs.stat(file).catch(() => undefined);
    if (stat === undefined || stat.mtimeMs >= before) continue;
    await fs.rm(file, { force: true });
    purged += 1;
  }
  return purged;
}
