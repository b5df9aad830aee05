import Database from 'better-sqlite3';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { checkDatabase, StoreIntegrityError } from './sqlite-integrity.js';

/** What `backup` wrote. */
export interface BackupReport {
  readonly database: string;
  readonly bytes: number;
  /** Other files of the data directory (e.g. a generated credentials key), copied beside it. */
  readonly files: readonly string[];
  readonly filesDir: string | undefined;
}

/** The database's own files: everything else in the data directory is copied as is. */
const DATABASE_FILES = new Set(['catalog.db', 'catalog.db-wal', 'catalog.db-shm', 'catalog.db-journal']);

/**
 * Copies the embedded store of `dataDir` to `to` with SQLite's online backup (consistent while
 * the server keeps serving and writing), checks the copy with `quick_check`, and copies every
 * other regular file of the data directory into `<to>.files/` (keys a server generated there
 * must be restored with the data they open). Refuses to overwrite `to`.
 */
export async function backupEmbeddedStore(dataDir: string, to: string): Promise<BackupReport> {
  const source = path.join(dataDir, 'catalog.db');
  if (!existsSync(source)) throw new StoreIntegrityError(`${source} does not exist: nothing to back up`);
  if (existsSync(to)) throw new StoreIntegrityError(`${to} exists: choose a new file for the backup`);
  const db = new Database(source, { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    await db.backup(to);
  } finally {
    db.close();
  }
  const copy = new Database(to, { readonly: true });
  try {
    checkDatabase(copy, to);
  } finally {
    copy.close();
  }
  const others = readdirSync(dataDir).filter(
    (name) => !DATABASE_FILES.has(name) && statSync(path.join(dataDir, name)).isFile(),
  );
  const filesDir = others.length > 0 ? `${to}.files` : undefined;
  if (filesDir) {
    mkdirSync(filesDir, { recursive: true, mode: 0o700 });
    for (const name of others) copyFileSync(path.join(dataDir, name), path.join(filesDir, name));
  }
  return { database: to, bytes: statSync(to).size, files: others, filesDir };
}
