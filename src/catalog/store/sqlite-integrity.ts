import type Database from 'better-sqlite3';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { CatalogError } from '../errors.js';
import { lineageMismatch } from './sqlite-wal-lineage.js';

/**
 * Integrity of the embedded store's SQLite file, in three hooks:
 *  - `checkFilesBeforeOpen`: a zero-byte database where a catalog was (SQLite would silently
 *    start an empty one), a WAL without its database, a WAL that is not one or whose page
 *    size is not the database's (SQLite would silently discard it, acknowledged writes with it),
 *    and a well-formed WAL that does not continue this file (another database's, or ours from
 *    before a restore: SQLite would replay it over the wrong pages; sqlite-wal-lineage.ts) stop
 *    start-up;
 *  - `checkDatabase`: `PRAGMA quick_check` after opening (a damaged page stops start-up);
 *  - `guardDatabase`: once any statement reports corruption or an I/O error at run time, the
 *    store refuses every further statement (503) and `/readyz` fails, so nothing more is written
 *    into a damaged file and the orchestrator takes the replica out of service.
 * Each stop is one `StoreIntegrityError` sentence saying what to do: restore from a backup
 * (`aios-registry-catalog backup --to FILE`, README "Backup and restore").
 */

/** The database cannot be used as it is; the message says what was found and what to do. */
export class StoreIntegrityError extends Error {
  override name = 'StoreIntegrityError';
}

/** A statement on a store found damaged at run time: 503 until it is restored. */
export class StoreDamagedError extends CatalogError {
  constructor(readonly reason: string) {
    super(
      'unavailable',
      'The catalog database is damaged and has been taken out of service; an operator must restore it from a backup',
    );
  }
}

const RESTORE = 'restore it from a backup (README, "Backup and restore")';

/** SQLite result codes that mean the file, not the statement, is in trouble. */
const DAMAGE_CODES = /^SQLITE_(CORRUPT|NOTADB|IOERR|FULL|CANTOPEN|READONLY_DBMOVED)/;

function size(file: string): number | undefined {
  try {
    return statSync(file).size;
  } catch {
    return undefined;
  }
}

function readBytes(file: string, position: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const read = readSync(fd, buffer, 0, length, position);
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

/** SQLite's WAL checksum (https://sqlite.org/fileformat.html#checksum_algorithm), continued from `s`. */
function walChecksum(data: Buffer, bigEndian: boolean, s: [number, number] = [0, 0]): [number, number] {
  let [s0, s1] = s;
  for (let i = 0; i + 8 <= data.length; i += 8) {
    const x0 = bigEndian ? data.readUInt32BE(i) : data.readUInt32LE(i);
    const x1 = bigEndian ? data.readUInt32BE(i + 4) : data.readUInt32LE(i + 4);
    s0 = (s0 + x0 + s1) >>> 0;
    s1 = (s1 + x1 + s0) >>> 0;
  }
  return [s0, s1];
}

/** Why the WAL next to `dbFile` does not belong to it, or undefined when it does (or is empty). */
export function walMismatch(dbFile: string, walFile: string): string | undefined {
  const walSize = size(walFile) ?? 0;
  if (walSize === 0) return undefined;
  if (walSize < 32) return 'its header is truncated';
  const header = readBytes(walFile, 0, 32);
  const magic = header.readUInt32BE(0);
  if (magic !== 0x377f0682 && magic !== 0x377f0683) return 'it is not a SQLite write-ahead log';
  const bigEndian = magic === 0x377f0683;
  const [c0, c1] = walChecksum(header.subarray(0, 24), bigEndian);
  if (c0 !== header.readUInt32BE(24) || c1 !== header.readUInt32BE(28)) return 'its header checksum is wrong';
  const pageSize = header.readUInt32BE(8);
  const dbHeader = readBytes(dbFile, 0, 100);
  if (dbHeader.length < 100) return undefined; // a database SQLite has not written yet
  const raw = dbHeader.readUInt16BE(16);
  const dbPageSize = raw === 1 ? 65536 : raw;
  if (dbPageSize !== pageSize) return `its page size (${pageSize}) is not the database's (${dbPageSize})`;
  // The first frame, as SQLite's recovery reads it: one whose salts are not the header's or whose
  // checksum does not continue the header's ends the log there (after a crash between the
  // header's sync and the frame's: nothing is replayed, nothing acknowledged is lost).
  const frame = readBytes(walFile, 32, 24 + pageSize);
  if (frame.length < 24 + pageSize) return undefined;
  if (!frame.subarray(8, 16).equals(header.subarray(16, 24))) return undefined;
  const [f0, f1] = walChecksum(
    frame.subarray(24),
    bigEndian,
    walChecksum(frame.subarray(0, 8), bigEndian, [c0, c1]),
  );
  if (f0 !== frame.readUInt32BE(16) || f1 !== frame.readUInt32BE(20)) return undefined;
  return lineageMismatch(dbHeader, frame);
}

/** Before SQLite opens `dbFile`: refuses a zero-byte database and a WAL that does not match it. */
export function checkFilesBeforeOpen(dbFile: string): void {
  const dbSize = size(dbFile);
  const walSize = size(`${dbFile}-wal`) ?? 0;
  if (dbSize === 0)
    throw new StoreIntegrityError(
      `${dbFile} is empty (0 bytes)${walSize > 0 ? ' while its write-ahead log is not' : ''}, where a catalog was: ${RESTORE}, or delete it (and its -wal/-shm files) to start an empty catalog`,
    );
  if (dbSize === undefined && walSize > 0)
    throw new StoreIntegrityError(`${dbFile} is missing but its write-ahead log is there: ${RESTORE}`);
  if (dbSize !== undefined) {
    const mismatch = walMismatch(dbFile, `${dbFile}-wal`);
    if (mismatch)
      throw new StoreIntegrityError(
        `${dbFile}-wal does not belong to ${dbFile} (${mismatch}), so replaying it would lose or mix acknowledged writes: if ${dbFile} was just restored, delete ${dbFile}-wal and ${dbFile}-shm; otherwise ${RESTORE}`,
      );
  }
}

/** After opening: SQLite's `quick_check` (every page readable, b-trees well formed). Returns its time in ms. */
export function checkDatabase(db: Database.Database, dbFile: string): number {
  const started = performance.now();
  let problems: string[];
  try {
    problems = (db.pragma('quick_check(3)') as Array<{ quick_check: string }>).map((row) =>
      row.quick_check.replace(/\s+/g, ' ').trim(),
    );
  } catch (error) {
    throw new StoreIntegrityError(`${dbFile} is damaged (${(error as Error).message}): ${RESTORE}`, {
      cause: error,
    });
  }
  if (problems.length !== 1 || problems[0] !== 'ok')
    throw new StoreIntegrityError(
      `${dbFile} is damaged (quick_check: ${problems.filter((line) => !line.startsWith('***')).join('; ')}): ${RESTORE}`,
    );
  return performance.now() - started;
}

/** Translates SQLite's refusal to open a damaged file into the one-sentence error. */
export function asIntegrityError(error: unknown, dbFile: string): unknown {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && DAMAGE_CODES.test(code)
    ? new StoreIntegrityError(`${dbFile} cannot be opened (${(error as Error).message}): ${RESTORE}`, {
        cause: error,
      })
    : error;
}

/** Run-time state of a guarded database: healthy until a statement reports damage. */
export interface IntegrityState {
  /** The first damage seen, or undefined while healthy. */
  damage: string | undefined;
}

const STATEMENT_METHODS = ['run', 'get', 'all', 'iterate'] as const;

/**
 * Wraps `db.prepare` so that every statement (prepared before or after) reports damage into
 * the returned state, and refuses to run once damage was seen. `ping` checks the state.
 * `afterWrite` is called after each successful `run`.
 */
export function guardDatabase(db: Database.Database, afterWrite: () => void = () => {}): IntegrityState {
  const state: IntegrityState = { damage: undefined };
  const prepare = db.prepare.bind(db);
  const guarded = (...args: Parameters<typeof prepare>) => {
    const statement = prepare(...args) as unknown as Record<string, (...args: unknown[]) => unknown>;
    for (const method of STATEMENT_METHODS) {
      const original = statement[method]!;
      // `arguments` with Reflect.apply: V8 passes it through without copying (rest/spread and
      // bind cost several microseconds per call here, a third of a get-by-id).
      statement[method] = function guardedCall(this: unknown) {
        if (state.damage !== undefined) throw new StoreDamagedError(state.damage);
        try {
          // eslint-disable-next-line prefer-rest-params
          return Reflect.apply(original, statement, arguments);
        } catch (error) {
          const code = (error as { code?: unknown }).code;
          if (typeof code === 'string' && DAMAGE_CODES.test(code)) {
            state.damage = `${code}: ${(error as Error).message}`;
            throw new StoreDamagedError(state.damage);
          }
          throw error;
        }
      };
    }
    // Writes only, in a wrapper of their own: the reads' path stays as short as it was.
    const run = statement.run!;
    statement.run = function guardedRun(this: unknown) {
      // eslint-disable-next-line prefer-rest-params
      const result = Reflect.apply(run, statement, arguments);
      afterWrite();
      return result;
    };
    return statement;
  };
  (db as unknown as { prepare: typeof guarded }).prepare = guarded;
  return state;
}
