import Database from 'better-sqlite3';
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { compileFilter, sortDocuments } from '../language/mongo-semantics.js';
import type { Filter } from '../model.js';
import {
  DuplicateIdError,
  QueryTimeoutError,
  type Collection,
  type CollectionSpec,
  type DocumentDatabase,
  type FindOptions,
  type IndexSpec,
  type ReplaceResult,
  type StreamOptions,
  type Versioned,
  type VersionedText,
} from './collection.js';
import { prefixRange } from './regex-prefix.js';
import { DEFAULT_SCAN_BUDGET, ScanGate, type ScanBudget } from './scan-budget.js';
import {
  asIntegrityError,
  checkDatabase,
  checkFilesBeforeOpen,
  guardDatabase,
  StoreDamagedError,
  type IntegrityState,
} from './sqlite-integrity.js';
import { SEAL_WAL_BYTES, sealGeneration } from './sqlite-wal-lineage.js';

/**
 * The default backend: one SQLite file (better-sqlite3) under `DATA_DIR`, so the catalog runs
 * with nothing installed. WAL with `synchronous=FULL` makes every acknowledged write survive
 * `kill -9` and power loss.
 *
 * A collection is a table `(id, version, <column indexes>, doc)`; documents are JSON text. A
 * `multi` index is a side table with one row per value. Filters are evaluated with MongoDB
 * semantics by mingo (language/mongo-semantics.ts). A filter made only of equality/`$in` of
 * strings on indexed fields and the id is answered by SQL alone, paged in SQL; any other filter
 * narrows candidates through those indexes when it can and is then evaluated on the candidates,
 * within the scan budget (scan-budget.ts), one scan of the whole database at a time.
 *
 * The file's integrity is checked at open (sqlite-integrity.ts: zero-byte file, foreign WAL,
 * `quick_check`), each WAL generation is chained to the file it continues (sqlite-wal-lineage.ts); damage found by a statement at run time takes the database out of service.
 */
export class EmbeddedDatabase implements DocumentDatabase {
  /** One gate for every collection of the file: in-process scans run one at a time. */
  private readonly scans: ScanGate;
  private readonly integrity: IntegrityState;
  private readonly optimizer: NodeJS.Timeout;
  private checkpointScheduled = false;
  private readonly stamp: () => string;
  /** How long `quick_check` took at open, for the start-up log. */
  quickCheckMs = 0;

  private constructor(
    /** The SQLite handle (benchmarks checkpoint it). */
    readonly db: Database.Database,
    budget: ScanBudget,
  ) {
    this.integrity = guardDatabase(db, () => this.scheduleCheckpoint());
    this.stamp = changeStamp(db);
    this.scans = new ScanGate(budget);
    // The planner's statistics, as SQLite advises for long-lived connections: at open and then
    // periodically. Without them it picks between two indexes blindly, e.g. `tag` (a tenth of a
    // million image records) over `repository` (ten) for `{repository, tag}`.
    this.optimizer = setInterval(() => this.optimize(), OPTIMIZE_EVERY_MS).unref();
  }

  /**
   * After a write: once the current synchronous work (a whole transaction) is done, in a task of
   * its own, checkpoints into a new WAL generation (sqlite-wal-lineage.ts) if the WAL outgrew
   * `SEAL_WAL_BYTES`: what SQLite's automatic checkpoint would do inside the commit, chained.
   */
  private scheduleCheckpoint(): void {
    if (this.checkpointScheduled) return;
    this.checkpointScheduled = true;
    setImmediate(() => {
      this.checkpointScheduled = false;
      this.checkpointIfLarge();
    });
  }

  private checkpointIfLarge(): void {
    if (!this.db.open || this.integrity.damage !== undefined) return;
    let walBytes: number;
    try {
      walBytes = statSync(`${this.db.name}-wal`).size;
    } catch {
      return;
    }
    if (walBytes >= SEAL_WAL_BYTES) this.checkpoint();
  }

  /** Checkpoints the WAL into the file now (benchmarks call it between phases). */
  checkpoint(): void {
    try {
      sealGeneration(this.db);
    } catch {
      // A busy connection (a statement mid-iteration) retries at the next check; damage is
      // reported by the statements themselves.
    }
  }

  /**
   * Refreshes the query planner's statistics where they are stale (`PRAGMA optimize`, each
   * index sampled, so it takes milliseconds on any size). Called at open and every 10 minutes.
   */
  optimize(): void {
    if (!this.db.open || this.integrity.damage !== undefined) return;
    try {
      this.db.pragma('analysis_limit = 1000');
      this.db.pragma('optimize = 0x10002');
    } catch {
      // Statistics are an optimisation: a busy or damaged file is reported by the statements themselves.
    }
  }

  /**
   * Opens (creating if needed) `<dataDir>/catalog.db`, refusing a damaged one
   * (`StoreIntegrityError`). `budget` bounds the in-process evaluation of filters.
   */
  static async open(dataDir: string, budget: ScanBudget = DEFAULT_SCAN_BUDGET): Promise<EmbeddedDatabase> {
    mkdirSync(dataDir, { recursive: true });
    const file = path.join(dataDir, 'catalog.db');
    checkFilesBeforeOpen(file);
    let db: Database.Database | undefined;
    let quickCheckMs: number;
    try {
      db = new Database(file);
      db.pragma('journal_mode = WAL');
      db.pragma('wal_autocheckpoint = 0'); // the store seals its own (sqlite-wal-lineage.ts)
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      // Reads of a large catalog come from memory-mapped pages rather than a read syscall and a
      // copy each (get-by-id at 100k documents: about 1.5x; a resolve's 10 rows of a 2.3 GB image
      // index: 128 -> 81 us), up to SQLite's ceiling of 2 GB, with a 32 MB page cache for the
      // rest. The mapped pages are the kernel's page cache (RSS counts them as RssFile; they are
      // dropped under memory pressure like any cached file page).
      db.pragma('mmap_size = 2147418112');
      db.pragma('cache_size = -32768');
      quickCheckMs = checkDatabase(db, file);
      sealGeneration(db);
    } catch (error) {
      db?.close();
      throw asIntegrityError(error, file);
    }
    const database = new EmbeddedDatabase(db, budget);
    database.quickCheckMs = quickCheckMs;
    database.optimize();
    return database;
  }

  async collection<T extends object>(name: string, spec: CollectionSpec): Promise<Collection<T>> {
    return new EmbeddedCollection<T>(this.db, name, spec, this.scans, this.stamp);
  }

  /** Fails once a statement has found the file damaged (sqlite-integrity.ts), so `/readyz` does. */
  async ping(): Promise<void> {
    if (this.integrity.damage !== undefined) throw new StoreDamagedError(this.integrity.damage);
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    clearInterval(this.optimizer);
    if (this.db.open) this.db.close();
  }
}

type Doc = Record<string, unknown>;

const OPTIMIZE_EVERY_MS = 600_000;

/**
 * A condition on an indexed field that SQL evaluates: equality or `$in` of strings (`values`),
 * or a key range (`range`: a `$regex` with a literal prefix, regex-prefix.ts). `exact`: SQL
 * decides it alone; otherwise it only narrows the candidates, which mingo then tests.
 */
interface IndexCondition {
  readonly index: IndexSpec | 'id';
  readonly values: readonly string[];
  readonly range?: { readonly from: string; readonly to: string };
  readonly exact: boolean;
}

type MultiStrategy = 'walk' | 'list';

const NAME = /^[a-z_][a-z0-9_]*$/;

/** Rows read per step of a streamed answer. */
const STREAM_BATCH = 100;

class EmbeddedCollection<T extends object> implements Collection<T> {
  private readonly statements;
  private readonly statementCache = new Map<string, Database.Statement>();
  private readonly columns: readonly IndexSpec[];
  private readonly multis: readonly IndexSpec[];
  private readonly byField: ReadonlyMap<string, IndexSpec | 'id'>;
  private readonly idField: string;
  /** Counts answered in SQL, by statement and parameters. */
  private readonly counts = new UntilChanged<number>(COUNTS_KEPT);
  /**
   * Documents' texts read by id, null for an id without one (`getTexts`: the resolver reads the
   * same registries and their last checks on every request).
   */
  private readonly texts = new UntilChanged<VersionedText | null>(TEXTS_KEPT);
  /** In-process scans under way, by filter: a page's find and count share one. */
  private readonly scansInFlight = new Map<string, Promise<Doc[]>>();

  constructor(
    private readonly db: Database.Database,
    private readonly table: string,
    spec: CollectionSpec,
    private readonly scans: ScanGate,
    /** Changes whenever the file's content may have (`changeStamp`). */
    private readonly stamp: () => string,
  ) {
    for (const name of [table, ...spec.indexes.flatMap((index) => [index.column, index.table ?? 'x'])])
      if (!NAME.test(name)) throw new Error(`not an SQL name: ${name}`);
    this.idField = spec.idField;
    this.columns = spec.indexes.filter((index) => index.kind === 'column');
    this.multis = spec.indexes.filter((index) => index.kind === 'multi');
    this.byField = new Map<string, IndexSpec | 'id'>([
      [spec.idField, 'id'],
      ...spec.indexes.map((index) => [index.field, index] as const),
    ]);
    const compounds = (spec.compoundIndexes ?? []).map((fields) =>
      fields.map((field) => {
        const index = this.byField.get(field);
        if (index === undefined || index === 'id' || index.kind !== 'column')
          throw new Error(`a compound index needs column fields: ${field}`);
        return index.column;
      }),
    );
    const columnDefs = this.columns.map((index) => `${index.column},`).join(' ');
    db.exec(
      [
        `CREATE TABLE IF NOT EXISTS ${table} (id TEXT PRIMARY KEY, version INTEGER NOT NULL, ${columnDefs} doc TEXT NOT NULL)`,
        ...this.columns.map(
          // (value, id): a page in id order of the rows with one value walks the index without
          // sorting, and a page over a range sorts ids read from the index alone (no row is read
          // but the page's). Replaces the (value) index of earlier versions, built once at open.
          (index) =>
            `CREATE INDEX IF NOT EXISTS ${table}_${index.column}_id ON ${table} (${index.column}, id); DROP INDEX IF EXISTS ${table}_${index.column}`,
        ),
        ...compounds.map(
          (columns) =>
            `CREATE INDEX IF NOT EXISTS ${table}_${columns.join('_')}_id ON ${table} (${columns.join(', ')}, id)`,
        ),
        ...this.multis.flatMap((index) => [
          `CREATE TABLE IF NOT EXISTS ${index.table} (${index.column} TEXT NOT NULL, id TEXT NOT NULL REFERENCES ${table} (id) ON DELETE CASCADE, PRIMARY KEY (${index.column}, id)) WITHOUT ROWID`,
          `CREATE INDEX IF NOT EXISTS ${index.table}_id ON ${index.table} (id)`,
        ]),
      ].join(';\n'),
    );
    const names = this.columns.map((index) => index.column);
    this.statements = {
      get: db.prepare<[string], { doc: string; version: number }>(
        `SELECT doc, version FROM ${table} WHERE id = ?`,
      ),
      insert: db.prepare(
        `INSERT INTO ${table} (id, version, ${names.map((n) => `${n}, `).join('')}doc) VALUES (?, 1, ${names.map(() => '?, ').join('')}?)`,
      ),
      replace: db.prepare(
        `UPDATE ${table} SET version = version + 1, ${names.map((n) => `${n} = ?, `).join('')}doc = ? WHERE id = ? AND version = ?`,
      ),
      exists: db.prepare<[string], { one: number }>(`SELECT 1 AS one FROM ${table} WHERE id = ?`),
      delete: db.prepare(`DELETE FROM ${table} WHERE id = ?`),
      multi: this.multis.map((index) => ({
        index,
        clear: db.prepare(`DELETE FROM ${index.table} WHERE id = ?`),
        insert: db.prepare(`INSERT OR IGNORE INTO ${index.table} (${index.column}, id) VALUES (?, ?)`),
      })),
    };
  }

  private idOf(document: T): string {
    return (document as Doc)[this.idField] as string;
  }

  /** The row's index columns: strings and numbers as they are, anything else NULL. */
  private columnValues(document: T): unknown[] {
    return this.columns.map((index) => {
      const value = (document as Doc)[index.field];
      return typeof value === 'string' || typeof value === 'number' ? value : null;
    });
  }

  private writeMultis(id: string, document: T): void {
    for (const { index, insert } of this.statements.multi) {
      const value = (document as Doc)[index.field];
      const values = Array.isArray(value) ? value : [value];
      for (const item of values) if (typeof item === 'string') insert.run(item, id);
    }
  }

  /** Inserts one document; false when the id exists. Call inside a transaction. */
  private insertOne(document: T): boolean {
    const id = this.idOf(document);
    try {
      this.statements.insert.run(id, ...this.columnValues(document), JSON.stringify(document));
    } catch (error) {
      if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return false;
      throw error;
    }
    this.writeMultis(id, document);
    return true;
  }

  async create(document: T): Promise<Versioned<T>> {
    if (!this.db.transaction(() => this.insertOne(document))())
      throw new DuplicateIdError(this.idOf(document));
    return { document: structuredClone(document), version: 1 };
  }

  async createMany(documents: readonly T[]): Promise<Set<string>> {
    return this.db.transaction(() => {
      const created = new Set<string>();
      for (const document of documents) if (this.insertOne(document)) created.add(this.idOf(document));
      return created;
    })();
  }

  async get(id: string): Promise<Versioned<T> | undefined> {
    const row = this.statements.get.get(id);
    return row ? { document: JSON.parse(row.doc) as T, version: row.version } : undefined;
  }

  async getText(id: string): Promise<VersionedText | undefined> {
    const row = this.statements.get.get(id);
    return row ? { text: row.doc, version: row.version } : undefined;
  }

  async getTexts(ids: readonly string[]): Promise<Map<string, VersionedText>> {
    const found = new Map<string, VersionedText>();
    const stamp = this.rememberingStamp();
    const unknown: string[] = [];
    for (const id of ids) {
      const known = stamp === undefined ? undefined : this.texts.get(id, stamp);
      if (known) found.set(id, known);
      else if (known === undefined) unknown.push(id);
    }
    for (let start = 0; start < unknown.length; start += ID_BATCH) {
      const batch = unknown.slice(start, start + ID_BATCH);
      const rows = this.prepared<{ id: string; doc: string; version: number }>(
        `SELECT id, doc, version FROM ${this.table} WHERE id IN (${placeholders(batch)})`,
      ).all(...batch);
      for (const row of rows) {
        const text = { text: row.doc, version: row.version };
        found.set(row.id, text);
        if (stamp !== undefined && row.doc.length <= TEXT_KEPT_MAX_CHARS) this.texts.set(row.id, stamp, text);
      }
    }
    if (stamp !== undefined)
      for (const id of unknown)
        if (!found.has(id) && id.length <= ID_KEPT_MAX_CHARS) this.texts.set(id, stamp, null);
    return found;
  }

  async getMany(ids: readonly string[]): Promise<Map<string, Versioned<T>>> {
    const found = new Map<string, Versioned<T>>();
    for (const [id, { text, version }] of await this.getTexts(ids))
      found.set(id, { document: JSON.parse(text) as T, version });
    return found;
  }

  /** Replaces one document at its version; false when it moved on or is gone. Call inside a transaction. */
  private replaceOne(document: T, expectedVersion: number): boolean {
    const id = this.idOf(document);
    const { changes } = this.statements.replace.run(
      ...this.columnValues(document),
      JSON.stringify(document),
      id,
      expectedVersion,
    );
    if (changes === 0) return false;
    for (const { clear } of this.statements.multi) clear.run(id);
    this.writeMultis(id, document);
    return true;
  }

  async replaceManyIfVersion(entries: ReadonlyArray<Versioned<T>>): Promise<Set<string>> {
    return this.db.transaction(() => {
      const replaced = new Set<string>();
      for (const { document, version } of entries)
        if (this.replaceOne(document, version)) replaced.add(this.idOf(document));
      return replaced;
    })();
  }

  async replaceIfVersion(document: T, expectedVersion: number): Promise<ReplaceResult<T>> {
    const id = this.idOf(document);
    const replaced = this.db.transaction(() => this.replaceOne(document, expectedVersion))();
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

  async deleteMany(filter: Filter): Promise<void> {
    const ids = (await this.matching(filter)).map((document) => document[this.idField] as string);
    this.db.transaction(() => {
      for (const id of ids) this.statements.delete.run(id);
    })();
  }

  async find(filter: Filter, options: FindOptions): Promise<T[]> {
    return this.findWith(filter, options);
  }

  /** `find`, told how many documents match when the caller counted them already (`findPage`). */
  private async findWith(filter: Filter, options: FindOptions, counted?: number): Promise<T[]> {
    const exact = this.exactIndexConditions(filter);
    const idOrderOnly = options.sort.every(([field]) => field === this.idField);
    if (exact && idOrderOnly) {
      // Answered by SQL alone, paged in SQL: only the returned page is parsed.
      const direction = options.sort[0]?.[1] === -1 ? 'DESC' : 'ASC';
      const walk = this.walksIdOrder(exact, options.skip + options.limit, counted);
      const { sql, params } = this.indexQuery(
        exact,
        'r.id',
        `ORDER BY r.id ${direction} LIMIT ? OFFSET ?`,
        this.multiStrategy(exact),
        walk,
      );
      // The page's ids first (from the indexes), then only their documents: SQLite would
      // otherwise carry every match's document through the sort.
      const rows = this.prepared<{ doc: string }>(
        `SELECT doc FROM ${this.table} WHERE id IN (${sql}) ORDER BY id ${direction}`,
      ).all(...params, options.limit, options.skip);
      return rows.map((row) => JSON.parse(row.doc) as T);
    }
    const column = exact && this.orderColumn(options.sort);
    if (exact && column) {
      // One indexed column, then the id: SQLite walks the (value, id) index in MongoDB's order
      // (numbers before strings, strings by their UTF-8 bytes) and parses only the page.
      const { sql, params } = this.indexQuery(
        exact,
        'r.id',
        `ORDER BY r.${column.name} ${column.direction}, r.id ${column.idDirection} LIMIT ? OFFSET ?`,
        this.multiStrategy(exact),
      );
      const rows = this.prepared<{ doc: string }>(
        `SELECT doc FROM ${this.table} WHERE id IN (${sql}) ORDER BY ${column.name} ${column.direction}, id ${column.idDirection}`,
      ).all(...params, options.limit, options.skip);
      return rows.map((row) => JSON.parse(row.doc) as T);
    }
    const matches = [...(this.fewMatches(filter, exact) ?? (await this.matching(filter)))];
    sortDocuments(matches, options.sort, this.idField);
    return matches.slice(options.skip, options.skip + options.limit) as T[];
  }

  /**
   * The index column that can order a page by `sort` in SQL: a sort on one column-indexed field
   * (then the id, as `sortDocuments` breaks ties), while no row holds a value the column cannot order
   * as MongoDB does (missing, null, objects, arrays, booleans are NULL there: those sort in process).
   */
  private orderColumn(
    sort: FindOptions['sort'],
  ): { name: string; direction: 'ASC' | 'DESC'; idDirection: 'ASC' | 'DESC' } | undefined {
    const [first, second, ...rest] = sort;
    if (!first || rest.length > 0) return undefined;
    const index = this.byField.get(first[0]);
    if (index === undefined || index === 'id' || index.kind !== 'column') return undefined;
    if (second && second[0] !== this.idField) return undefined;
    const unordered = this.prepared<{ one: number }>(
      `SELECT 1 AS one FROM ${this.table} WHERE ${index.column} IS NULL LIMIT 1`,
    ).get();
    if (unordered) return undefined;
    const sqlDirection = (direction: number) => (direction === -1 ? 'DESC' : 'ASC');
    return {
      name: index.column,
      direction: sqlDirection(first[1]),
      idDirection: sqlDirection(second?.[1] ?? 1),
    };
  }

  async *stream(filter: Filter, options: StreamOptions): AsyncIterable<T> {
    if (!options.sort.every(([field]) => field === this.idField)) {
      // Another order needs every match at hand to sort (as `find` does); the answer is still
      // written out as it is consumed.
      yield* await this.find(filter, { sort: options.sort, skip: 0, limit: options.limit });
      return;
    }
    // In id order: one walk over the primary key, a batch of rows per step (each step is one
    // synchronous read, so writers interleave between steps), each row tested with mingo.
    const descending = options.sort[0]?.[1] === -1;
    const step = this.prepared<{ id: string; doc: string }>(
      `SELECT id, doc FROM ${this.table} WHERE id ${descending ? '<' : '>'} ? ORDER BY id ${descending ? 'DESC' : 'ASC'} LIMIT ${STREAM_BATCH}`,
    );
    const test = compileFilter(filter);
    const { sliceMs, maxTimeMs } = this.scans.budget;
    let after = descending ? '\uffff' : '';
    let left = options.limit;
    // The scan budget, counted in work only: time the consumer spends writing the answer (its
    // back-pressure) is not the query's, as MongoDB's maxTimeMS counts server time only.
    let worked = 0;
    let sliceStart = performance.now();
    for (;;) {
      const rows = step.all(after);
      for (const row of rows) {
        const document = JSON.parse(row.doc) as Doc;
        const matched = test(document);
        const now = performance.now();
        if (now - sliceStart >= sliceMs) {
          worked += now - sliceStart;
          if (worked >= maxTimeMs) throw new QueryTimeoutError(maxTimeMs);
          await yieldToEventLoop();
          sliceStart = performance.now();
        }
        if (!matched) continue;
        worked += performance.now() - sliceStart;
        yield document as T;
        sliceStart = performance.now();
        if (--left === 0) return;
      }
      if (rows.length < STREAM_BATCH) return;
      after = rows[rows.length - 1]!.id;
    }
  }

  async findPage(filter: Filter, options: FindOptions): Promise<{ items: T[]; total: number }> {
    if (this.exactIndexConditions(filter)) {
      // SQL alone: the total first, which tells the page how to reach its rows (`walksIdOrder`).
      const total = await this.count(filter);
      return { items: await this.findWith(filter, options, total), total };
    }
    // A scan the indexes cannot avoid is shared by the two (`matching`).
    const [items, total] = await Promise.all([this.find(filter, options), this.count(filter)]);
    return { items, total };
  }

  async count(filter: Filter): Promise<number> {
    if (Object.keys(filter).length === 0) return this.countedBySql(TOTAL(this.table), []);
    const exact = this.exactIndexConditions(filter);
    const only = exact?.length === 1 ? exact[0]! : undefined;
    if (only && only.index !== 'id' && only.index.kind === 'multi') {
      // Counted on the side table alone: no document row is touched.
      const { sql: where, params } = match(only, only.index.column);
      return this.countedBySql(
        `SELECT COUNT(DISTINCT id) AS n FROM ${only.index.table} WHERE ${where}`,
        params,
      );
    }
    if (exact) {
      const { sql, params } = this.indexQuery(exact, 'COUNT(*) AS n', '', 'list');
      return this.countedBySql(sql, params);
    }
    return (this.fewMatches(filter) ?? (await this.matching(filter))).length;
  }

  /**
   * The change stamp to remember reads under (`UntilChanged`), or undefined inside a
   * transaction: a rollback leaves the stamp as it was, so what was read there is not kept.
   */
  private rememberingStamp(): string | undefined {
    return this.db.inTransaction ? undefined : this.stamp();
  }

  /**
   * A count in SQL, remembered until the file changes (`stamp`): a count walks every matching
   * index entry (50,000 of a prefix regex over 1M image records: 5 ms, five times the rest of
   * its page), and a client paging through one filter asks the same count on every page.
   */
  private countedBySql(sql: string, params: readonly unknown[]): number {
    const count = () => this.prepared<{ n: number }>(sql).get(...params)!.n;
    const key = `${sql}\0${JSON.stringify(params)}`;
    // A filter of many values (a long `$in`) is not kept: 256 of them could hold a lot of memory.
    if (key.length > COUNT_KEY_MAX_CHARS) return count();
    const stamp = this.rememberingStamp();
    if (stamp === undefined) return count();
    const known = this.counts.get(key, stamp);
    if (known !== undefined) return known;
    const n = count();
    this.counts.set(key, stamp, n);
    return n;
  }

  /**
   * The matches of a filter whose index conditions leave at most FEW_CANDIDATES rows (e.g. the
   * resolver's `{repository, tag}` sorted by `last_seen`): read in one statement and tested here,
   * without queueing behind other scans at the gate, since the work is bounded. Undefined when
   * the indexes leave more (or cannot narrow): those go through `matching` and its budget.
   * `exact`: the filter's `exactIndexConditions`, when the caller has them: they decide the
   * whole filter, so every row read matches and none is tested again.
   */
  private fewMatches(filter: Filter, exact?: readonly IndexCondition[]): Doc[] | undefined {
    const narrowing = exact ?? this.conditions(filter).filter((c): c is IndexCondition => c !== undefined);
    if (narrowing.length === 0) return undefined;
    const { sql, params } = this.indexQuery(narrowing, 'r.doc', `LIMIT ${FEW_CANDIDATES + 1}`, 'list');
    const rows = this.prepared<{ doc: string }>(sql).all(...params);
    if (rows.length > FEW_CANDIDATES) return undefined;
    if (exact) return rows.map((row) => JSON.parse(row.doc) as Doc);
    const test = compileFilter(filter);
    const matches: Doc[] = [];
    for (const row of rows) {
      const document = JSON.parse(row.doc) as Doc;
      if (test(document)) matches.push(document);
    }
    return matches;
  }

  /**
   * How to match a `multi` condition when paging in id order: walking the rows and probing the
   * side table stops after one page, which is fast when the values are common; listing the
   * matching ids first is fast when they are rare. The side table's row count tells which.
   */
  private multiStrategy(conditions: readonly IndexCondition[]): MultiStrategy {
    const multi = conditions.find((c) => c.index !== 'id' && c.index.kind === 'multi');
    if (!multi || multi.index === 'id' || (multi.values.length === 0 && !multi.range)) return 'list';
    const { sql: where, params } = match(multi, multi.index.column);
    const sql = `SELECT COUNT(*) AS n FROM ${multi.index.table} WHERE ${where}`;
    const matching = this.prepared<{ n: number }>(sql).get(...params)!.n;
    return matching * 20 > this.countedBySql(TOTAL(this.table), []) ? 'walk' : 'list';
  }

  /**
   * Whether a page in id order of the rows matching column conditions is found faster by walking
   * the id index and testing each row (it stops after `end` matches: about `end` x rows / matches
   * rows read) than by reading every match from the value index and sorting their ids (e.g. a
   * prefix regex matching 50,000 of 1,000,000 records: 8 ms sorting, 0.2 ms walking). Walks when
   * matches x matches > end x rows, counting matches up to that bound only. Rows are estimated
   * by the largest rowid (deletes make it high, which only favours the sort).
   */
  private walksIdOrder(conditions: readonly IndexCondition[], end: number, matches?: number): boolean {
    if (conditions.length === 0 || conditions.some((c) => c.index === 'id' || c.index.kind !== 'column'))
      return false;
    const rows =
      this.prepared<{ n: number | null }>(`SELECT MAX(rowid) AS n FROM ${this.table}`).get()!.n ?? 0;
    const bound = Math.ceil(Math.sqrt(end * rows));
    if (matches !== undefined) return matches >= bound;
    const { sql, params } = this.indexQuery(conditions, '1', `LIMIT ${bound}`, 'list');
    return this.prepared<{ n: number }>(`SELECT COUNT(*) AS n FROM (${sql})`).get(...params)!.n >= bound;
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

  /**
   * Documents matching `filter`: candidates from the indexes when possible, then mingo.
   * Candidates are read in pages of rowids and evaluated within the scan budget, so a query
   * over many large documents yields to other requests and ends at `maxTimeMs`. Concurrent
   * callers with the same filter (a page's find and count) share one scan.
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
    const narrowing = this.conditions(filter).filter((c): c is IndexCondition => c !== undefined);
    const candidates =
      narrowing.length > 0
        ? this.indexQuery(narrowing, 'r.rowid AS rowid, r.doc', '', 'list')
        : { sql: `SELECT r.rowid AS rowid, r.doc FROM ${this.table} r`, params: [] };
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

  /**
   * A condition on one indexed field, when `value` is a string, `{$eq|$in: strings}`, or a
   * `$regex` (string or RegExp, optional `$options`) with a literal prefix.
   */
  private indexCondition(field: string, value: unknown): IndexCondition | undefined {
    const index = this.byField.get(field);
    if (!index) return undefined;
    const range = regexRange(value);
    if (range) return { index, values: [], range: range.range, exact: range.exact };
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
    return values ? { index, values, exact: true } : undefined;
  }

  /** One entry per top-level conjunct: its index condition, or undefined when SQL cannot decide it. */
  private conditions(filter: Filter): Array<IndexCondition | undefined> {
    return conjuncts(filter).map(([field, value]) => this.indexCondition(field, value));
  }

  /** Index conditions equivalent to the whole filter (none for `{}`), or undefined when something else is in it. */
  private exactIndexConditions(filter: Filter): IndexCondition[] | undefined {
    const conditions = this.conditions(filter);
    return conditions.every((c) => c !== undefined && c.exact) ? (conditions as IndexCondition[]) : undefined;
  }

  /** SQL selecting rows that satisfy every condition (each `multi` condition through its side table). */
  private indexQuery(
    conditions: readonly IndexCondition[],
    select: string,
    tail: string,
    strategy: MultiStrategy,
    /** Column conditions tested on each row walked in id order (`walksIdOrder`), not by their index. */
    walkIds = false,
  ): { sql: string; params: unknown[] } {
    const params: unknown[] = [];
    const where = conditions.map((condition) => {
      const { index } = condition;
      // A unary `+` keeps SQLite from using the column's index (its documented way to steer the plan).
      const column =
        index === 'id'
          ? 'r.id'
          : index.kind === 'column'
            ? `${walkIds ? '+' : ''}r.${index.column}`
            : `t.${index.column}`;
      const { sql, params: values } = match(condition, column);
      params.push(...values);
      if (index === 'id' || index.kind === 'column') return sql;
      return strategy === 'walk'
        ? `EXISTS (SELECT 1 FROM ${index.table} t WHERE t.id = r.id AND ${sql})`
        : `r.id IN (SELECT t.id FROM ${index.table} t WHERE ${sql})`;
    });
    const whereClause = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    return { sql: `SELECT ${select} FROM ${this.table} r ${whereClause} ${tail}`, params };
  }
}

/**
 * A value that changes whenever the file's content may have: the rows this connection changed
 * so far (`total_changes()`, counting statements rolled back too, which only forgets more) and
 * `data_version`, which SQLite bumps when another connection commits. Equal values mean no row
 * was written between the two reads (DDL moves neither: the store never drops a table it serves).
 */
function changeStamp(db: Database.Database): () => string {
  const changes = db.prepare<[], number>('SELECT total_changes()').pluck();
  const version = db.prepare<[], number>('PRAGMA data_version').pluck();
  return () => `${changes.get()}:${version.get()}`;
}

/** Every row of a table (SQLite walks the smallest index: 1M image records, milliseconds). */
const TOTAL = (table: string) => `SELECT COUNT(*) AS n FROM ${table}`;

/**
 * Values read from the file, remembered until it changes: each is kept with the change stamp it
 * was read at (`changeStamp`), so a write anywhere in the file makes every one of them miss. Full,
 * it starts again empty (the keys are few in practice: filter shapes, registries).
 */
class UntilChanged<V> {
  private readonly entries = new Map<string, { stamp: string; value: V }>();
  constructor(private readonly capacity: number) {}

  get(key: string, stamp: string): V | undefined {
    const entry = this.entries.get(key);
    return entry?.stamp === stamp ? entry.value : undefined;
  }

  set(key: string, stamp: string, value: V): void {
    if (this.entries.size >= this.capacity && !this.entries.has(key)) this.entries.clear();
    this.entries.set(key, { stamp, value });
  }
}

/** Counts remembered per collection (the shapes are few, their values many). */
const COUNTS_KEPT = 256;
const COUNT_KEY_MAX_CHARS = 4096;
/** Texts remembered per collection, and the longest kept (a registry document is ~1 kB). */
const TEXTS_KEPT = 1024;
const TEXT_KEPT_MAX_CHARS = 16_384;
/** An id asked for and not found is remembered too, when no longer than this. */
const ID_KEPT_MAX_CHARS = 256;

/** Ids per statement of `getMany` (SQLite allows 32,766 parameters; few shapes to prepare). */
const ID_BATCH = 500;

/** Candidates few enough to test without the scan gate (a few milliseconds of parsing at most). */
const FEW_CANDIDATES = 200;

/** Rows read per page of an in-process scan (50 kB documents: about 1 MB, a millisecond of reading). */
const SCAN_PAGE_ROWS = 25;

/** SQL testing `column` against one condition: `IN (...)`, or a half-open key range (index range scan). */
function match(condition: IndexCondition, column: string): { sql: string; params: string[] } {
  if (condition.range)
    return { sql: `${column} >= ? AND ${column} < ?`, params: [condition.range.from, condition.range.to] };
  return { sql: `${column} IN (${placeholders(condition.values)})`, params: [...condition.values] };
}

/** The key range of a `$regex` condition value (string or RegExp pattern, `$options`), if it has one. */
function regexRange(value: unknown): ReturnType<typeof prefixRange> {
  if (value instanceof RegExp) return prefixRange(value.source, value.flags);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const keys = Object.keys(value).sort();
  const { $regex: pattern, $options: options = '' } = value as Doc;
  if (keys.join() !== '$regex' && keys.join() !== '$options,$regex') return undefined;
  if (typeof options !== 'string') return undefined;
  if (pattern instanceof RegExp) return prefixRange(pattern.source, pattern.flags + options);
  return typeof pattern === 'string' ? prefixRange(pattern, options) : undefined;
}

function placeholders(values: readonly unknown[]): string {
  return values.map(() => '?').join(', ') || 'NULL';
}

/** The top-level conjuncts of a filter (its keys, and the clauses of a top-level `$and`). */
function conjuncts(filter: Filter): Array<[string, unknown]> {
  return Object.entries(filter).flatMap(([key, value]) =>
    key === '$and' && Array.isArray(value)
      ? value.flatMap((clause) => conjuncts(clause as Filter))
      : [[key, value] as [string, unknown]],
  );
}
