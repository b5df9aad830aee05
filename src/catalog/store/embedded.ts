import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { compareBy, compileFilter } from '../domain/mongo-semantics.js';
import type {
  ContainerRegistry,
  Filter,
  FindOptions,
  RegistryStore,
  ReplaceResult,
  StoredRegistry,
} from './registry-store.js';
import { DuplicateIdError } from './registry-store.js';
import { DEFAULT_SCAN_BUDGET, ScanGate, type ScanBudget } from './scan-budget.js';
import {
  asIntegrityError,
  checkDatabase,
  checkFilesBeforeOpen,
  guardDatabase,
  StoreDamagedError,
  type IntegrityState,
} from './sqlite-integrity.js';

/**
 * The default store: one SQLite file (better-sqlite3) under `DATA_DIR`, so the catalog runs
 * with nothing installed. Documents are JSON text with a version column; WAL with
 * `synchronous=FULL` makes every acknowledged write survive `kill -9` and power loss.
 *
 * Filters are evaluated with MongoDB semantics by mingo (mongo-semantics.ts). Two side
 * indexes keep common queries from parsing every document: `registry_tags` (one row per tag)
 * and the `name` column. A filter made only of equality/`$in` on tags, name and id is answered
 * by SQL alone, paged in SQL; any other filter narrows candidates through those indexes when it
 * can and is then evaluated on the candidates.
 */

/** Schema migrations, applied in order; `PRAGMA user_version` records how many ran. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE registries (
     id TEXT PRIMARY KEY,
     version INTEGER NOT NULL,
     name TEXT NOT NULL,
     doc TEXT NOT NULL
   );
   CREATE INDEX registries_name ON registries (name);
   CREATE TABLE registry_tags (
     tag TEXT NOT NULL,
     id TEXT NOT NULL REFERENCES registries (id) ON DELETE CASCADE,
     PRIMARY KEY (tag, id)
   ) WITHOUT ROWID;
   CREATE INDEX registry_tags_id ON registry_tags (id);`,
];

type Doc = Record<string, unknown>;
type IndexedField = 'container_registry_id' | 'container_registry_name' | 'container_registry_tags';
const COLUMN: Record<IndexedField, string> = {
  container_registry_id: 'r.id',
  container_registry_name: 'r.name',
  container_registry_tags: 't.tag',
};

/** A condition on an indexed field that SQL can evaluate exactly: equality or `$in` of strings. */
interface IndexCondition {
  readonly field: IndexedField;
  readonly values: readonly string[];
}

export class EmbeddedStore implements RegistryStore {
  /** The SQLite handle, for stores that keep their own tables in the same file (health records). */
  readonly db: Database.Database;
  private readonly statements;
  private readonly statementCache = new Map<string, Database.Statement>();

  private readonly scans: ScanGate;
  /** In-process scans under way, by filter: a page's find and count share one. */
  private readonly scansInFlight = new Map<string, Promise<Doc[]>>();

  private readonly integrity: IntegrityState;
  /** How long `quick_check` took at open, for the start-up log. */
  quickCheckMs = 0;

  private constructor(db: Database.Database, budget: ScanBudget) {
    this.db = db;
    this.integrity = guardDatabase(db);
    this.scans = new ScanGate(budget);
    this.statements = {
      get: db.prepare<[string], { doc: string; version: number }>(
        'SELECT doc, version FROM registries WHERE id = ?',
      ),
      insert: db.prepare('INSERT INTO registries (id, version, name, doc) VALUES (?, 1, ?, ?)'),
      replace: db.prepare(
        'UPDATE registries SET version = version + 1, name = ?, doc = ? WHERE id = ? AND version = ?',
      ),
      exists: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM registries WHERE id = ?'),
      delete: db.prepare('DELETE FROM registries WHERE id = ?'),
      deleteTags: db.prepare('DELETE FROM registry_tags WHERE id = ?'),
      insertTag: db.prepare('INSERT OR IGNORE INTO registry_tags (tag, id) VALUES (?, ?)'),
      all: db.prepare<[], { doc: string }>('SELECT doc FROM registries'),
      count: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM registries'),
      ping: db.prepare('SELECT 1'),
    };
  }

  /**
   * Opens (creating if needed) `<dataDir>/catalog.db` and brings its schema up to date.
   * `budget` bounds the in-process evaluation of filters (scan-budget.ts).
   */
  static async open(dataDir: string, budget: ScanBudget = DEFAULT_SCAN_BUDGET): Promise<EmbeddedStore> {
    mkdirSync(dataDir, { recursive: true });
    const file = path.join(dataDir, 'catalog.db');
    checkFilesBeforeOpen(file);
    let db: Database.Database | undefined;
    let quickCheckMs: number;
    try {
      db = new Database(file);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      // Reads of a large catalog come from memory-mapped pages rather than a read syscall each
      // (get-by-id at 100k documents: about 1.5x), with a 32 MB page cache for the rest.
      db.pragma('mmap_size = 268435456');
      db.pragma('cache_size = -32768');
      quickCheckMs = checkDatabase(db, file);
      migrate(db, MIGRATIONS);
    } catch (error) {
      db?.close();
      throw asIntegrityError(error, file);
    }
    const store = new EmbeddedStore(db, budget);
    store.quickCheckMs = quickCheckMs;
    return store;
  }

  async create(document: ContainerRegistry): Promise<StoredRegistry> {
    const id = document.container_registry_id;
    try {
      this.db.transaction(() => {
        this.statements.insert.run(id, document.container_registry_name, JSON.stringify(document));
        for (const tag of document.container_registry_tags) this.statements.insertTag.run(tag, id);
      })();
    } catch (error) {
      if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY')
        throw new DuplicateIdError(id);
      throw error;
    }
    return { document: structuredClone(document), version: 1 };
  }

  async get(id: string): Promise<StoredRegistry | undefined> {
    const row = this.statements.get.get(id);
    return row ? { document: JSON.parse(row.doc) as ContainerRegistry, version: row.version } : undefined;
  }

  async replaceIfVersion(document: ContainerRegistry, expectedVersion: number): Promise<ReplaceResult> {
    const id = document.container_registry_id;
    const replaced = this.db.transaction(() => {
      const { changes } = this.statements.replace.run(
        document.container_registry_name,
        JSON.stringify(document),
        id,
        expectedVersion,
      );
      if (changes === 0) return false;
      this.statements.deleteTags.run(id);
      for (const tag of document.container_registry_tags) this.statements.insertTag.run(tag, id);
      return true;
    })();
    if (replaced)
      return {
        status: 'replaced',
        stored: { document: structuredClone(document), version: expectedVersion + 1 },
      };
    return this.statements.exists.get(id) ? { status: 'conflict' } : { status: 'missing' };
  }

  async delete(id: string): Promise<boolean> {
    return this.statements.delete.run(id).changes > 0;
  }

  async find(filter: Filter, options: FindOptions): Promise<ContainerRegistry[]> {
    const exact = exactIndexConditions(filter);
    const idOrderOnly = options.sort.every(([field]) => field === 'container_registry_id');
    if (exact && idOrderOnly) {
      // Answered by SQL alone, paged in SQL: only the returned page is parsed.
      const direction = options.sort[0]?.[1] === -1 ? 'DESC' : 'ASC';
      const { sql, params } = indexQuery(
        exact,
        'r.doc',
        `ORDER BY r.id ${direction} LIMIT ? OFFSET ?`,
        this.tagStrategy(exact),
      );
      const rows = this.prepared<{ doc: string }>(sql).all(...params, options.limit, options.skip);
      return rows.map((row) => JSON.parse(row.doc) as ContainerRegistry);
    }
    const matches = [...(await this.matching(filter))];
    matches.sort(compareBy(options.sort));
    return matches.slice(options.skip, options.skip + options.limit) as unknown as ContainerRegistry[];
  }

  async count(filter: Filter): Promise<number> {
    if (Object.keys(filter).length === 0) return this.statements.count.get()!.n;
    const exact = exactIndexConditions(filter);
    if (exact?.length === 1 && exact[0]!.field === 'container_registry_tags') {
      // Counted on the tag index alone: no registry row is touched.
      const values = exact[0]!.values;
      const sql = `SELECT COUNT(DISTINCT id) AS n FROM registry_tags WHERE tag IN (${values.map(() => '?').join(', ') || 'NULL'})`;
      return this.prepared<{ n: number }>(sql).get(...values)!.n;
    }
    if (exact) {
      const { sql, params } = indexQuery(exact, 'COUNT(*) AS n', '', 'list');
      return this.prepared<{ n: number }>(sql).get(...params)!.n;
    }
    return (await this.matching(filter)).length;
  }

  /**
   * How to match tag conditions when paging in id order: walking the registries and probing the
   * tag index stops after one page, which is fast when the tags are common; listing the matching
   * ids first is fast when they are rare. The tag index's row count tells which.
   */
  private tagStrategy(conditions: readonly IndexCondition[]): TagStrategy {
    const tags = conditions.find((condition) => condition.field === 'container_registry_tags');
    if (!tags || tags.values.length === 0) return 'list';
    const sql = `SELECT COUNT(*) AS n FROM registry_tags WHERE tag IN (${tags.values.map(() => '?').join(', ')})`;
    const matching = this.prepared<{ n: number }>(sql).get(...tags.values)!.n;
    return matching * 20 > this.statements.count.get()!.n ? 'walk' : 'list';
  }

  /** Prepared statements for generated SQL, cached by text (the shapes are few: they vary by value counts). */
  private prepared<Row>(sql: string): Database.Statement<unknown[], Row> {
    let statement = this.statementCache.get(sql);
    if (!statement) {
      if (this.statementCache.size >= 256) this.statementCache.clear();
      statement = this.db.prepare(sql);
      this.statementCache.set(sql, statement);
    }
    return statement as Database.Statement<unknown[], Row>;
  }

  /** Fails once a statement has found the file damaged (sqlite-integrity.ts), so `/readyz` does. */
  async ping(): Promise<void> {
    if (this.integrity.damage !== undefined) throw new StoreDamagedError(this.integrity.damage);
    this.statements.ping.get();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  /**
   * Documents matching `filter`: candidates from the side indexes when possible, then mingo.
   * Candidates are read in pages of rowids and evaluated within the scan budget, so a query
   * over many large documents yields to other requests and ends at `maxTimeMs`.
   */
  private matching(filter: Filter): Promise<Doc[]> {
    const key = JSON.stringify(filter);
    let scan = this.scansInFlight.get(key);
    if (!scan) {
      scan = this.scan(filter).finally(() => this.scansInFlight.delete(key));
      this.scansInFlight.set(key, scan);
    }
    return scan;
  }

  private async scan(filter: Filter): Promise<Doc[]> {
    const test = compileFilter(filter);
    const narrowing = narrowingConditions(filter);
    const candidates =
      narrowing.length > 0
        ? indexQuery(narrowing, 'r.rowid AS rowid, r.doc', '', 'list')
        : { sql: 'SELECT r.rowid AS rowid, r.doc FROM registries r', params: [] };
    const page = this.prepared<{ rowid: number; doc: string }>(
      `SELECT rowid, doc FROM (${candidates.sql}) WHERE rowid > ? ORDER BY rowid LIMIT ${SCAN_PAGE_ROWS}`,
    );
    let after = 0;
    const matches: Doc[] = [];
    await this.scans.scan(
      () => page.all(...candidates.params, after),
      (row) => {
        after = row.rowid;
        const document = JSON.parse(row.doc) as Doc;
        if (test(document)) matches.push(document);
      },
    );
    return matches;
  }
}

/** Rows read per page of an in-process scan (50 kB documents: about 1 MB, a millisecond of reading). */
const SCAN_PAGE_ROWS = 25;

function migrate(db: Database.Database, migrations: readonly string[]): void {
  const applied = db.pragma('user_version', { simple: true }) as number;
  db.transaction(() => {
    for (let i = applied; i < migrations.length; i++) db.exec(migrations[i]!);
    db.pragma(`user_version = ${migrations.length}`);
  })();
}

/** A condition on one indexed field, when `value` is a string or `{$eq|$in: strings}` only. */
function indexCondition(field: string, value: unknown): IndexCondition | undefined {
  if (!(field in COLUMN)) return undefined;
  const strings = (values: unknown[]) =>
    values.every((v) => typeof v === 'string') ? (values as string[]) : undefined;
  let values: string[] | undefined;
  if (typeof value === 'string') values = [value];
  else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const operand = (value as Doc)[keys[0]!];
    if (keys.length === 1 && keys[0] === '$eq' && typeof operand === 'string') values = [operand];
    if (keys.length === 1 && keys[0] === '$in' && Array.isArray(operand)) values = strings(operand);
  }
  return values ? { field: field as IndexedField, values } : undefined;
}

/** The top-level conjuncts of a filter (its keys, and the clauses of a top-level `$and`). */
function conjuncts(filter: Filter): Array<[string, unknown]> {
  return Object.entries(filter).flatMap(([key, value]) =>
    key === '$and' && Array.isArray(value)
      ? value.flatMap((clause) => conjuncts(clause as Filter))
      : [[key, value] as [string, unknown]],
  );
}

/** Index conditions equivalent to the whole filter (none for `{}`), or undefined when something else is in it. */
function exactIndexConditions(filter: Filter): IndexCondition[] | undefined {
  const parts = conjuncts(filter);
  const conditions = parts.map(([field, value]) => indexCondition(field, value));
  return conditions.every((condition) => condition !== undefined) ? conditions : undefined;
}

/** Index conditions implied by the filter (each candidate must satisfy them; mingo decides the rest). */
function narrowingConditions(filter: Filter): IndexCondition[] {
  return conjuncts(filter)
    .map(([field, value]) => indexCondition(field, value))
    .filter((condition): condition is IndexCondition => condition !== undefined);
}

type TagStrategy = 'walk' | 'list';

/** SQL selecting registries that satisfy every condition (each tag condition through the tag index). */
function indexQuery(
  conditions: readonly IndexCondition[],
  select: string,
  tail: string,
  strategy: TagStrategy,
): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const where = conditions.map((condition) => {
    params.push(...condition.values);
    const placeholders = condition.values.map(() => '?').join(', ') || 'NULL';
    if (condition.field === 'container_registry_tags') {
      return strategy === 'walk'
        ? `EXISTS (SELECT 1 FROM registry_tags t WHERE t.id = r.id AND t.tag IN (${placeholders}))`
        : `r.id IN (SELECT t.id FROM registry_tags t WHERE t.tag IN (${placeholders}))`;
    }
    return `${COLUMN[condition.field]} IN (${placeholders})`;
  });
  const whereClause = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
  return { sql: `SELECT ${select} FROM registries r ${whereClause} ${tail}`, params };
}
