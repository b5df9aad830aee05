import type Database from 'better-sqlite3';
import { randomInt } from 'node:crypto';

/**
 * Which write-ahead log belongs to which database file. Nothing in SQLite's WAL names its
 * database: a well-formed `-wal` of another database with the same page size, or an old `-wal`
 * of ours left beside a restored `catalog.db`, would be replayed over it page by page (a mix of
 * two states that `quick_check` does not always see). So every WAL generation is chained to the
 * database state it continues, through two 32-bit fields of the database header that nothing
 * else uses (https://sqlite.org/fileformat.html#the_database_header):
 *
 *  - closing a generation (`sealGeneration`): `user_version` := a fresh random seal (a commit,
 *    in the old WAL), then `wal_checkpoint(TRUNCATE)` (the file now holds that state, the WAL
 *    is empty), then `application_id` := the seal: the new generation's first frame is page 1
 *    naming the state it continues.
 *  - at start (`lineageMismatch`, before SQLite replays anything): the WAL's first frame must be
 *    page 1 whose `application_id` is the database's `user_version` (the file is the sealed
 *    state the log continues) or its `application_id` (the file already holds a page 1 of this
 *    generation: a checkpoint was cut short, or it is a copy made during this generation; the
 *    log rolls it forward to the same pages either way).
 *
 * Automatic checkpoints are off (they would start generations without the chain); the store
 * seals at open and whenever the WAL outgrows `SEAL_WAL_BYTES`. Every crash point keeps a
 * consistent pair: before the checkpoint the file holds the previous seal, during it a page 1
 * of this generation, after it the WAL is empty. A database never sealed (made by an older
 * version: both fields 0) accepts any well-formed WAL once, then is sealed.
 */

/** SQLite's default automatic checkpoint (1,000 pages of 4 kB). */
export const SEAL_WAL_BYTES = 4 * 1024 * 1024;

/**
 * Checkpoints `db` into its file and starts a new WAL generation chained to it. False when a
 * reader kept the checkpoint from completing (the current generation simply goes on).
 */
export function sealGeneration(db: Database.Database): boolean {
  // The two marks are committed without their own fsync (they hold no user data): the
  // checkpoint syncs the WAL before copying it, so the seal is durable before the file takes it;
  // the mark is synced by the next commit's, and until then a lost mark leaves a log of no frames.
  const synchronous = db.pragma('synchronous', { simple: true }) as number;
  // TRUNCATE waits for readers through the busy handler: never on the event loop (a `backup`
  // reading for seconds), the next write's check tries again.
  const busyTimeout = db.pragma('busy_timeout', { simple: true }) as number;
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 0');
  try {
    const seal = randomInt(1, 2 ** 31);
    db.pragma(`user_version = ${seal}`);
    const [result] = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number }>;
    if (result?.busy !== 0 || result.log !== 0) return false;
    db.pragma(`application_id = ${seal}`);
    return true;
  } finally {
    db.pragma(`synchronous = ${synchronous}`);
    db.pragma(`busy_timeout = ${busyTimeout}`);
  }
}

/**
 * Why a WAL whose first valid frame is `frame` (24-byte header, then the page) does not
 * continue the database whose first 100 bytes are `dbHeader`, or undefined when it does.
 */
export function lineageMismatch(dbHeader: Buffer, frame: Buffer): string | undefined {
  const dbSeal = dbHeader.readUInt32BE(60);
  const dbGeneration = dbHeader.readUInt32BE(68);
  if (dbSeal === 0 && dbGeneration === 0) return undefined; // never sealed: nothing to compare
  if (frame.readUInt32BE(0) !== 1)
    return 'it does not start with this catalog’s generation mark: another database’s log';
  const continues = frame.readUInt32BE(24 + 68);
  if (continues === dbSeal || continues === dbGeneration) return undefined;
  return `it continues another state (generation ${continues.toString(16)}; the database is at ${dbSeal.toString(16)}): another catalog’s log, or a log left from before a restore`;
}
