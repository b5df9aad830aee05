import type { Readable, Writable } from 'node:stream';

/** What `stat` reports about a path. */
export interface FileInfo {
  readonly size: number;
  readonly mtimeMs: number;
  readonly isDirectory: boolean;
}

/**
 * A stream that appends to an upload file; `done` settles once the bytes are written. They are
 * durable once `move`d into place (the filesystem driver fsyncs there, once per upload).
 */
export interface AppendStream {
  readonly stream: Writable;
  /** Resolves after the last byte is written and the file is closed. */
  readonly done: Promise<void>;
  /**
   * Whether a write's callback means the stream holds the chunk no more (the file writer: the
   * bytes are in the page cache), so its memory may be reused; false when it may still hold it
   * after the callback (S3: chunks wait in a part buffer).
   */
  readonly releasesOnCallback: boolean;
}

/** An open file for positional reads (blob downloads reuse one buffer instead of a stream). */
export interface ReadableFile {
  readonly size: number;
  /** Reads up to `buffer.length` bytes at `position`; returns how many were read (0 at the end). */
  read(buffer: Buffer, position: number): Promise<number>;
  close(): Promise<void>;
}

/** Options of {@link StorageDriver.writeFile}. */
export interface WriteOptions {
  /** Default true: the content survives a crash once the write resolves. */
  readonly durable?: boolean;
}

/**
 * The storage seam of the registry: a small byte-level interface over slash-separated paths
 * relative to the storage root (see `layout.ts` for what lives where). The registry logic never
 * touches the filesystem directly, so another backend only has to implement these methods.
 *
 * Guarantees every implementation gives: `writeFile` and `move` are atomic (a reader sees the old
 * content or the new one, never a prefix) and durable when they resolve; a missing path is
 * `undefined` / `[]`, never an error.
 */
export interface StorageDriver {
  stat(path: string): Promise<FileInfo | undefined>;
  /** Whole content of a small file, or `undefined` when it does not exist. */
  readFile(path: string): Promise<Buffer | undefined>;
  /**
   * Atomically replaces `path` with `content` (temp file, fsync, rename, fsync directory). With
   * `durable: false` the fsyncs are skipped: still atomic, but a crash may lose it (for state a
   * client can recreate, such as a new upload session).
   */
  writeFile(path: string, content: Uint8Array | string, options?: WriteOptions): Promise<void>;
  /**
   * Creates `path` with `content` only when nothing is there: true when this call created it,
   * false when it existed. Atomic against every other caller on the same storage, in any process
   * (`O_EXCL` on a filesystem, `If-None-Match: *` on S3): the registry's one mutual-exclusion
   * primitive, for markers such as an upload chunk's claim. Not fsynced.
   */
  createExclusive(path: string, content: string): Promise<boolean>;
  /** Creates an empty file if missing and sets its mtime to now (links). */
  touch(path: string): Promise<void>;
  /** Sets the mtime of an existing file to now; false (and nothing created) when it is missing. */
  refresh(path: string): Promise<boolean>;
  /** Streams `[start, end]` (inclusive) of a file. */
  readStream(path: string, start?: number, end?: number): Readable;
  /** Opens a file for positional reads, or `undefined` when it does not exist. */
  openRead(path: string): Promise<ReadableFile | undefined>;
  /** Opens `path` for writing at `offset`, creating it when absent. */
  appendStream(path: string, offset: number): Promise<AppendStream>;
  /** Names of the entries of a directory, sorted; `[]` when it does not exist. */
  list(path: string): Promise<string[]>;
  /** Atomically renames `from` to `to` (replacing `to`), creating parents; `to` is durable after. */
  move(from: string, to: string): Promise<void>;
  /** Removes a file or a directory tree; no error when missing. */
  delete(path: string): Promise<void>;
  /** Removes empty directories from `path` upwards, stopping at `stopAt` or at the first non-empty one. */
  pruneEmptyDirectories(path: string, stopAt: string): Promise<void>;
  /** Fails when the storage cannot be used at all (a missing bucket, refused credentials); checked at start. */
  checkAccess?(): Promise<void>;
}
