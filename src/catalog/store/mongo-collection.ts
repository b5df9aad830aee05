import {
  MongoBulkWriteError,
  MongoClient,
  MongoServerError,
  type ObjectId,
  type Collection as MongoNativeCollection,
  type Db,
  type Document,
  type IndexDescription,
  type Sort,
} from 'mongodb';
import pLimit from 'p-limit';
import type { ReplaceMode } from '../config.js';
import type { Filter } from '../model.js';
import {
  DocumentRejectedError,
  DuplicateIdError,
  QueryRejectedError,
  QueryTimeoutError,
  type Collection,
  type CollectionSpec,
  type DocumentDatabase,
  type FindOptions,
  type ReplaceResult,
  type StreamOptions,
  type Versioned,
  type VersionedText,
} from './collection.js';

/**
 * MongoDB backend (official driver). In each collection the document's id is `_id` (spec
 * `mongoKey: 'id'`) or an ordinary field under a unique index beside a server-side `_id`
 * (`mongoKey: 'field'`, the original AIOS layout); `_version` is the internal compare-and-swap
 * counter, never returned, and absent from documents another writer made (read as version 0,
 * the first replace adds it). Works on standalone servers, replica sets and sharded clusters
 * (nothing here needs transactions).
 *
 * A replace-if-version is one conditional `replaceOne({_id, _version})` where the server makes
 * it atomic (MongoDB: a document's filter and write are one operation). FerretDB 1.24 does not
 * (it queries, then writes by `_id`, so two writers of the same version could both win and one
 * update would be lost): there each replace first claims the version it will write, by
 * inserting `<id>@<version>` into `<collection>_version_claims` (a unique-key insert is atomic
 * everywhere), at the cost of more round trips (each by `_id` alone once it is known, see
 * `conditionalReplace`). The claim is removed once the write is done; a writer that died holding one is overtaken after CLAIM_TTL_MS. Which path runs is
 * detected at connect (FerretDB names itself in `buildInfo`) unless configured
 * (`MONGODB_REPLACE_MODE`).
 */
export class MongoDatabase implements DocumentDatabase {
  private constructor(
    private readonly client: MongoClient,
    /** The database (benchmarks seed it in bulk; tests drop it). */
    readonly db: Db,
    /** The path every collection of this database takes (never `auto` once connected). */
    readonly replaceMode: 'atomic' | 'claim',
    /** `maxTimeMS` of every find and count: the server stops a slow filter instead of running on. */
    private readonly maxTimeMs: number,
    /** FerretDB: every filter but one on `_id` alone is a scan of the collection (see `findPage`). */
    private readonly scansFilters: boolean,
  ) {}

  /**
   * FerretDB: finds and counts sent at once, across collections. Each is a scan in FerretDB's own
   * CPU time; sent 16 at once (the `$in` bench row), they shared the cores until each ran past
   * `maxTimeMS` and none finished. Queued here instead, each runs at full speed.
   */
  private readonly scans = pLimit(SCAN_CONCURRENCY);

  /** Connects, checks the server answers, and settles the replace mode (`auto` asks `buildInfo`). */
  static async connect(options: {
    uri: string;
    database: string;
    replaceMode?: ReplaceMode;
    /** `maxTimeMS` of every find and count (`QUERY_MAX_TIME_MS`); 5 s when not given. */
    maxTimeMs?: number;
  }): Promise<MongoDatabase> {
    const client = new MongoClient(options.uri, { serverSelectionTimeoutMS: 10_000 });
    await client.connect();
    const db = client.db(options.database);
    try {
      const wanted = options.replaceMode ?? 'auto';
      const ferret = await isFerretDb(db);
      const mode = wanted !== 'auto' ? wanted : ferret ? 'claim' : 'atomic';
      return new MongoDatabase(client, db, mode, options.maxTimeMs ?? DEFAULT_MAX_TIME_MS, ferret);
    } catch (error) {
      await client.close();
      throw error;
    }
  }

  async collection<T extends object>(name: string, spec: CollectionSpec): Promise<Collection<T>> {
    const native = this.db.collection<StoredShape>(name);
    const byField = spec.mongoKey === 'field';
    // Before the unique index: documents still keyed by `_id` have no id field yet, and more
    // than one of them would be duplicates (null) under it.
    if (byField) await migrateIdIntoField(native, spec.idField);
    await ensureIndexes(native, [
      ...(byField ? [{ key: { [spec.idField]: 1 }, name: spec.idField, unique: true }] : []),
      ...spec.indexes.map((index) => ({ key: { [index.field]: 1 }, name: index.field })),
      ...(spec.compoundIndexes ?? []).map((fields) => ({
        key: Object.fromEntries(fields.map((field) => [field, 1])),
        name: fields.join('_'),
      })),
    ]);
    const claims =
      this.replaceMode === 'claim' ? this.db.collection<VersionClaim>(`${name}_version_claims`) : undefined;
    const gate = this.scansFilters ? this.scans : undefined;
    const collection = new MongoCollection<T>(native, claims, spec, this.maxTimeMs, this.scansFilters, gate);
    // In the background: start-up does not wait for a scan of the whole collection.
    if (byField) this.warmUps.push(collection.rememberServerIds());
    return collection;
  }

  private readonly warmUps: Array<Promise<void>> = [];

  /** Resolves when every collection opened so far has learnt its documents' `_id`s (benchmarks wait for it). */
  async warmedUp(): Promise<void> {
    await Promise.all(this.warmUps);
  }

  async ping(): Promise<void> {
    await this.db.command({ ping: 1 });
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  /** Drops the whole database: for tests that use a database of their own. */
  async dropDatabase(): Promise<void> {
    await this.db.dropDatabase();
  }
}

interface VersionClaim {
  _id: string;
  at: Date;
}

/** How long a claim may be held; a replace takes milliseconds, so only a dead writer exceeds it. */
const CLAIM_TTL_MS = 30_000;

/**
 * A claim outlives its write by at least this long, and is then removed with the others due in
 * one `deleteMany`, at most one per CLAIM_RELEASE_EVERY_MS (instead of one round trip per update). While it lasts, a writer
 * that saw the version before this write cannot claim the same version, which is what lets a
 * replace skip re-reading the version (`conditionalReplace`).
 */
const CLAIM_RETAIN_MS = 2_000;

/**
 * A replace skips re-reading the version when this collection saw the document at the expected
 * version less than this long before its claim was granted: any write since then holds its
 * claim for CLAIM_RETAIN_MS after it, so the claim would have been refused (half, as a margin).
 */
const SEEN_FRESH_MS = CLAIM_RETAIN_MS / 2;

const CLAIM_RELEASE_EVERY_MS = 1_000;

/** Documents whose last seen version is kept for SEEN_FRESH_MS (about 100 bytes each). */
const SEEN_CACHE = 10_000;

interface StoredShape {
  /** The id (`mongoKey: 'id'`), or an ObjectId (or anything another writer chose) under `field`. */
  _id?: string | ObjectId;
  /** Missing on documents another service wrote: version 0. */
  _version?: number;
  [field: string]: unknown;
}

/** Ids whose server `_id` is remembered (about 100 bytes each). */
const SERVER_ID_CACHE = 100_000;

/** Documents per round trip of a streamed answer. */
const STREAM_BATCH = 1000;

/** FerretDB: scans (finds and counts) run at once per database; the rest wait their turn. */
const SCAN_CONCURRENCY = 2;

/** FerretDB: matches read in one pass to count them without a second scan (see `findPage`). */
const COUNT_BY_READING = 2000;

/** Ids per `$in` read, and conditional replaces in flight, of `getMany` / `replaceManyIfVersion`. */
const MANY_BATCH = 100;

const DUPLICATE_KEY = 11000;
const BAD_VALUE = 2;
const NAMESPACE_NOT_FOUND = 26;

class MongoCollection<T extends object> implements Collection<T> {
  private readonly idField: string;
  /** The id is an ordinary field (the original AIOS layout) rather than `_id`. */
  private readonly byField: boolean;

  constructor(
    private readonly collection: MongoNativeCollection<StoredShape>,
    /** Present on the `claim` path only. */
    private readonly claims: MongoNativeCollection<VersionClaim> | undefined,
    spec: CollectionSpec,
    private readonly maxTimeMs: number,
    private readonly scansFilters: boolean,
    /** FerretDB: where finds and counts wait their turn (`MongoDatabase.scans`). */
    private readonly scanGate?: <R>(scan: () => Promise<R>) => Promise<R>,
  ) {
    this.idField = spec.idField;
    this.byField = spec.mongoKey === 'field';
  }

  /** The filter selecting the document with this id. */
  private key(id: string): Record<string, unknown> {
    return this.byField ? { [this.idField]: id } : { _id: id };
  }

  /**
   * `mongoKey: 'field'`: the server `_id` last seen for each id. A filter naming it beside the id
   * (`{_id, container_registry_id}`) is answered from the `_id` index on every server, where
   * FerretDB 1.24 (SQLite backend) scans the whole collection for a filter on another field.
   * Never trusted alone: the id is always in the filter too, so a stale entry (the document was
   * deleted and re-created elsewhere) matches nothing and the lookup falls back to the id.
   */
  private readonly serverIds = new Map<string, string | ObjectId>();

  private remember(stored: StoredShape): void {
    if (!this.byField || stored._id === undefined) return;
    const id = stored[this.idField];
    if (typeof id !== 'string') return;
    if (this.serverIds.size >= SERVER_ID_CACHE && !this.serverIds.has(id)) {
      this.serverIds.delete(this.serverIds.keys().next().value!); // the oldest
    }
    this.serverIds.set(id, stored._id);
  }

  /**
   * Learns the `_id` of up to SERVER_ID_CACHE documents (one scan of `_id` and id, in batches),
   * so the first lookup of each is an index lookup too. Best effort: on any error, lookups
   * simply fall back to the id.
   */
  async rememberServerIds(): Promise<void> {
    try {
      const cursor = this.collection
        .find({}, { projection: { _id: 1, [this.idField]: 1 } })
        .limit(SERVER_ID_CACHE)
        .batchSize(STREAM_BATCH);
      for await (const stored of cursor)
        if (!this.serverIds.has(stored[this.idField] as string)) this.remember(stored);
    } catch {
      // closed or interrupted: nothing is lost but speed
    }
  }

  /** The filter for `id`, through the remembered `_id` when there is one. */
  private fastKey(id: string): Record<string, unknown> | undefined {
    const serverId = this.byField ? this.serverIds.get(id) : undefined;
    return serverId === undefined ? undefined : { _id: serverId, [this.idField]: id };
  }

  /**
   * One document by id: through the remembered `_id` first (a filter on `_id` alone, the only one
   * FerretDB 1.24 answers from its index; the id is checked here), then by the id.
   */
  private async findById(id: string): Promise<StoredShape | null> {
    const serverId = this.byField ? this.serverIds.get(id) : undefined;
    if (serverId !== undefined) {
      const sent = performance.now();
      const stored = await this.collection.findOne({ _id: serverId });
      if (stored && stored[this.idField] === id) return this.saw(id, stored, sent);
      this.serverIds.delete(id);
    }
    const sent = performance.now();
    const stored = await this.collection.findOne(this.key(id));
    if (stored) this.remember(stored);
    return stored && this.saw(id, stored, sent);
  }

  /**
   * Claim path, `mongoKey: 'field'`: the version each id had when a read of it was sent, by
   * ObjectId `_id` (a string `_id` may be re-used by a re-created document; an ObjectId never is).
   */
  private readonly seen = new Map<string, { serverId: ObjectId; version: number; at: number }>();

  private saw(id: string, stored: StoredShape, sent: number): StoredShape {
    if (!this.claims || !this.byField || typeof stored._id !== 'object') return stored;
    this.seen.delete(id);
    if (this.seen.size >= SEEN_CACHE) this.seen.delete(this.seen.keys().next().value!); // the oldest
    this.seen.set(id, { serverId: stored._id, version: stored._version ?? 0, at: sent });
    return stored;
  }

  async create(document: T): Promise<Versioned<T>> {
    const stored = this.toStored(document, 1);
    try {
      await this.collection.insertOne(stored); // the driver sets stored._id
      this.remember(stored);
      await this.releaseNow(this.idOf(document));
    } catch (error) {
      if (error instanceof MongoServerError && error.code === DUPLICATE_KEY)
        throw new DuplicateIdError(this.idOf(document));
      throw asDocumentRejected(error);
    }
    return { document, version: 1 };
  }

  async createMany(documents: readonly T[]): Promise<Set<string>> {
    const created = new Set(documents.map((document) => this.idOf(document)));
    if (documents.length === 0) return created;
    try {
      await this.collection.insertMany(
        documents.map((document) => this.toStored(document, 1)),
        { ordered: false },
      );
    } catch (error) {
      // Unordered: every insert was tried; the duplicates are the ids that existed already.
      if (!(error instanceof MongoBulkWriteError)) throw asDocumentRejected(error);
      const failures = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
      for (const failure of failures) {
        if (failure.code !== DUPLICATE_KEY) throw error;
        created.delete(this.idOf(documents[failure.index]!));
      }
    }
    return created;
  }

  async get(id: string): Promise<Versioned<T> | undefined> {
    const stored = await this.findById(id);
    return stored ? { document: this.fromStored(stored), version: stored._version ?? 0 } : undefined;
  }

  async getMany(ids: readonly string[]): Promise<Map<string, Versioned<T>>> {
    const found = new Map<string, Versioned<T>>();
    if (this.byField || this.scansFilters) {
      // By `_id` one at a time: FerretDB 1.24 answers no other filter from an index, and the
      // `field` layout keys by a remembered `_id` (findById).
      for (const id of ids) {
        const stored = await this.get(id);
        if (stored) found.set(id, stored);
      }
      return found;
    }
    for (let start = 0; start < ids.length; start += MANY_BATCH) {
      const batch = ids.slice(start, start + MANY_BATCH);
      const cursor = this.collection.find({ _id: { $in: batch } } as never).maxTimeMS(this.maxTimeMs);
      for (const stored of await refusedAsQueryRejected(cursor.toArray(), this.maxTimeMs))
        found.set(stored._id as string, { document: this.fromStored(stored), version: stored._version ?? 0 });
    }
    return found;
  }

  async replaceManyIfVersion(entries: ReadonlyArray<Versioned<T>>): Promise<Set<string>> {
    // A conditional replace per document (each needs its own answer), MANY_BATCH in flight on
    // MongoDB; one at a time on FerretDB, whose SQLite backend answers 100 concurrent updates
    // with SQLITE_BUSY (bench/images/write-seen.ts).
    const inFlight = this.scansFilters ? 1 : MANY_BATCH;
    const replaced = new Set<string>();
    for (let start = 0; start < entries.length; start += inFlight) {
      const results = await Promise.all(
        entries
          .slice(start, start + inFlight)
          .map(({ document, version }) => this.replaceIfVersion(document, version)),
      );
      results.forEach((result, i) => {
        if (result.status === 'replaced') replaced.add(this.idOf(entries[start + i]!.document));
      });
    }
    return replaced;
  }

  async getText(id: string): Promise<VersionedText | undefined> {
    const stored = await this.get(id);
    return stored && { text: JSON.stringify(stored.document), version: stored.version };
  }

  async getTexts(ids: readonly string[]): Promise<Map<string, VersionedText>> {
    const found = new Map<string, VersionedText>();
    for (const [id, stored] of await this.getMany(ids))
      found.set(id, { text: JSON.stringify(stored.document), version: stored.version });
    return found;
  }

  async replaceIfVersion(document: T, expectedVersion: number): Promise<ReplaceResult<T>> {
    const id = this.idOf(document);
    let replaced: boolean;
    if (!this.claims) {
      replaced = await this.conditionalReplace(id, document, expectedVersion);
    } else {
      const claim = `${id}@${expectedVersion + 1}`;
      const seen = this.seen.get(id);
      const claimed = await this.claim(this.claims, claim);
      if (!claimed) return { status: 'conflict' };
      // Seen at this version just before a claim granted afresh: nobody wrote since (see
      // SEEN_FRESH_MS), so the version need not be read again. A claim taken over from a
      // dead writer always re-reads.
      const unchanged =
        claimed === 'granted' &&
        seen?.version === expectedVersion &&
        performance.now() - seen.at < SEEN_FRESH_MS;
      try {
        replaced = await this.conditionalReplace(id, document, expectedVersion, unchanged ? seen : undefined);
      } finally {
        // Kept CLAIM_RETAIN_MS past the write (also when the write failed: it may have happened).
        this.release(claim);
      }
    }
    if (replaced) return { status: 'replaced', stored: { document, version: expectedVersion + 1 } };
    return (await this.collection.countDocuments(this.key(id), { limit: 1, maxTimeMS: this.maxTimeMs })) > 0
      ? { status: 'conflict' }
      : { status: 'missing' };
  }

  /**
   * `replaceOne` on id and version: atomic on MongoDB, and on FerretDB under a claim. `unchanged`:
   * the claim proves the document seen there still has the expected version (one round trip).
   */
  private async conditionalReplace(
    id: string,
    document: T,
    expectedVersion: number,
    unchanged?: { serverId: ObjectId },
  ): Promise<boolean> {
    if (unchanged) {
      // By `_id` alone: if the document was deleted (and re-created, with a new `_id`), no match.
      const result = await this.collection
        .replaceOne({ _id: unchanged.serverId }, this.toStored(document, expectedVersion + 1))
        .catch((error: unknown) => Promise.reject(asDocumentRejected(error)));
      return result.matchedCount === 1;
    }
    const serverId = this.byField && this.claims ? this.serverIds.get(id) : undefined;
    if (serverId !== undefined) {
      // Claim path with a known `_id`: FerretDB scans for any filter but `_id` alone, so check
      // the version by `_id`, then replace by `_id` (two index lookups instead of two scans).
      // Safe under the claim: only its holder may move the document past `expectedVersion`,
      // and a version already moved on is seen here as a conflict.
      const current = await this.collection.findOne(
        { _id: serverId },
        { projection: { _version: 1, [this.idField]: 1 } },
      );
      if (!current || current[this.idField] !== id || (current._version ?? 0) !== expectedVersion) {
        if (!current || current[this.idField] !== id) this.serverIds.delete(id);
        return false;
      }
      const result = await this.collection
        .replaceOne({ _id: serverId }, this.toStored(document, expectedVersion + 1))
        .catch((error: unknown) => Promise.reject(asDocumentRejected(error)));
      return result.matchedCount === 1;
    }
    // Version 0 is a document without `_version` (written by another service); the replacement
    // has no `_id`, so the server keeps the one it has.
    const version = expectedVersion === 0 ? { $exists: false } : expectedVersion;
    const result = await this.collection
      .replaceOne(
        { ...(this.fastKey(id) ?? this.key(id)), _version: version },
        this.toStored(document, expectedVersion + 1),
      )
      .catch((error: unknown) => Promise.reject(asDocumentRejected(error)));
    return result.matchedCount === 1;
  }

  /**
   * Whether this writer alone may write the claimed version: `granted` (the claim was free),
   * `overtaken` (it was held past CLAIM_TTL_MS), or undefined (another writer holds it).
   */
  private async claim(
    claims: MongoNativeCollection<VersionClaim>,
    claim: string,
  ): Promise<'granted' | 'overtaken' | undefined> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await claims.insertOne({ _id: claim, at: new Date() });
        return attempt === 0 ? 'granted' : 'overtaken';
      } catch (error) {
        if (!(error instanceof MongoServerError && error.code === DUPLICATE_KEY)) throw error;
      }
      const held = await claims.findOne({ _id: claim });
      if (held && Date.now() - held.at.getTime() < CLAIM_TTL_MS) return undefined;
      // Left by a writer that died between claim and write: take it over, once.
      if (held) await claims.deleteOne({ _id: claim, at: held.at });
    }
    return undefined;
  }

  /** Claims whose write is done, oldest first, each removed once `due` (`performance.now()`). */
  private readonly releasing: Array<{ claim: string; due: number }> = [];
  private releaseTimer: NodeJS.Timeout | undefined;

  private release(claim: string): void {
    this.releasing.push({ claim, due: performance.now() + CLAIM_RETAIN_MS });
    this.releaseTimer ??= setTimeout(() => void this.releaseDue(), CLAIM_RETAIN_MS).unref();
  }

  /**
   * Removes the claims due, and any claim left past CLAIM_TTL_MS by a writer that died, in one
   * `deleteMany` (the claims collection holds a few seconds' updates: a scan of it is cheap).
   */
  private async releaseDue(): Promise<void> {
    const now = performance.now();
    const due = this.releasing.findIndex((entry) => entry.due > now);
    const ids = this.releasing
      .splice(0, due === -1 ? this.releasing.length : due)
      .map((entry) => entry.claim);
    try {
      await this.claims!.deleteMany({
        $or: [{ _id: { $in: ids } }, { at: { $lt: new Date(Date.now() - CLAIM_TTL_MS) } }],
      });
    } catch {
      // closed or unreachable: a claim left behind is refused to stale writers only, and expires
    }
    const next = this.releasing[0];
    const wait = next && Math.max(CLAIM_RELEASE_EVERY_MS, next.due - performance.now());
    this.releaseTimer = next && setTimeout(() => void this.releaseDue(), wait).unref();
  }

  /**
   * After a delete or create of `id` here: its claims from before go now, so updates of a
   * re-created document are not refused for CLAIM_RETAIN_MS (they replace by the old `_id`, so
   * they could not write it anyway).
   */
  private async releaseNow(id: string): Promise<void> {
    this.seen.delete(id);
    const mine = this.releasing.filter((entry) => entry.claim.slice(0, entry.claim.lastIndexOf('@')) === id);
    if (mine.length === 0) return;
    for (const entry of mine) this.releasing.splice(this.releasing.indexOf(entry), 1);
    await this.claims!.deleteMany({ _id: { $in: mine.map((entry) => entry.claim) } });
  }

  async delete(id: string): Promise<boolean> {
    const fast = this.fastKey(id);
    this.serverIds.delete(id);
    const deleted =
      (fast && (await this.collection.deleteOne(fast)).deletedCount === 1) ||
      (await this.collection.deleteOne(this.key(id))).deletedCount === 1;
    await this.releaseNow(id);
    return deleted;
  }

  async deleteMany(filter: Filter): Promise<void> {
    await refusedAsQueryRejected(this.collection.deleteMany(this.toMongoFilter(filter)));
  }

  async find(filter: Filter, options: FindOptions): Promise<T[]> {
    const cursor = this.collection
      .find(this.toMongoFilter(filter))
      .sort(this.toMongoSort(options.sort))
      .skip(options.skip)
      .limit(options.limit)
      .maxTimeMS(this.maxTimeMs);
    return (
      await refusedAsQueryRejected(
        this.scan(() => cursor.toArray()),
        this.maxTimeMs,
      )
    ).map((stored) => {
      this.remember(stored);
      return this.fromStored(stored);
    });
  }

  async *stream(filter: Filter, options: StreamOptions): AsyncIterable<T> {
    // One cursor: the server sends batches as the caller consumes them (getMore per batch).
    const cursor = this.collection
      .find(this.toMongoFilter(filter))
      .sort(this.toMongoSort(options.sort))
      .limit(options.limit)
      .batchSize(STREAM_BATCH)
      .maxTimeMS(this.maxTimeMs);
    try {
      // The first batch is awaited here, so a refused filter is a QueryRejectedError, not a broken stream.
      const first = await refusedAsQueryRejected(cursor.hasNext(), this.maxTimeMs);
      if (!first) return;
      for await (const stored of cursor) {
        this.remember(stored);
        yield this.fromStored(stored);
      }
    } finally {
      await cursor.close();
    }
  }

  /** The sort with the id as the final tie-breaker, in stored field names. */
  private toMongoSort(spec: FindOptions['sort']): Sort {
    const idKey = this.byField ? this.idField : '_id';
    const sort: Record<string, 1 | -1> = Object.fromEntries(
      spec.map(([path, direction]) => [path === this.idField ? idKey : path, direction]),
    );
    if (!(idKey in sort)) sort[idKey] = 1;
    return sort;
  }

  /**
   * On MongoDB a find and a count, each from the indexes. On FerretDB 1.24 each of them is a full
   * scan of the collection (no filter, sort or limit pushdown for anything but `_id`), and two
   * scans per page halved the `$in` query row and queued it behind itself until nothing finished
   * in 5 s (bench/README.md): there the matches are read once, up to `COUNT_BY_READING` past the
   * page, and counted as read; only a larger answer pays the second scan.
   */
  async findPage(filter: Filter, options: FindOptions): Promise<{ items: T[]; total: number }> {
    const end = options.skip + options.limit;
    if (!this.scansFilters || end > COUNT_BY_READING) {
      const [items, total] = await Promise.all([this.find(filter, options), this.count(filter)]);
      return { items, total };
    }
    const cursor = this.collection
      .find(this.toMongoFilter(filter))
      .sort(this.toMongoSort(options.sort))
      .limit(COUNT_BY_READING + 1)
      .batchSize(COUNT_BY_READING + 1)
      .maxTimeMS(this.maxTimeMs);
    const read = await refusedAsQueryRejected(
      this.scan(() => cursor.toArray()),
      this.maxTimeMs,
    );
    const items = read.slice(options.skip, end).map((stored) => {
      this.remember(stored);
      return this.fromStored(stored);
    });
    const total = read.length <= COUNT_BY_READING ? read.length : await this.count(filter);
    return { items, total };
  }

  async count(filter: Filter): Promise<number> {
    return refusedAsQueryRejected(
      this.scan(() =>
        this.collection.countDocuments(this.toMongoFilter(filter), { maxTimeMS: this.maxTimeMs }),
      ),
      this.maxTimeMs,
    );
  }

  private scan<R>(run: () => Promise<R>): Promise<R> {
    return this.scanGate ? this.scanGate(run) : run();
  }

  private idOf(document: T): string {
    return (document as Record<string, unknown>)[this.idField] as string;
  }

  private toStored(document: T, version: number): StoredShape {
    if (this.byField) return { ...(document as Record<string, unknown>), _version: version };
    const { [this.idField]: id, ...fields } = document as Record<string, unknown>;
    return { _id: id as string, ...fields, _version: version };
  }

  /** The document with its id first and the other fields in stored order, without the internal fields. */
  private fromStored(stored: StoredShape): T {
    const { _id, _version, ...fields } = stored;
    void _version;
    if (this.byField) return fields as T;
    return { [this.idField]: _id, ...fields } as T;
  }

  /** With `mongoKey: 'id'` the stored id field is `_id`: rewrite it wherever a filter names it. */
  private toMongoFilter(filter: Filter): Record<string, unknown> {
    if (this.byField) return hoistAnd(filter as Record<string, unknown>);
    const rewrite = (node: unknown): unknown => {
      if (Array.isArray(node)) return node.map(rewrite);
      if (typeof node !== 'object' || node === null) return node;
      return Object.fromEntries(
        Object.entries(node).map(([key, value]) => [
          key === this.idField ? '_id' : key,
          key === '$and' || key === '$or' || key === '$nor' ? rewrite(value) : value,
        ]),
      );
    };
    return hoistAnd(rewrite(filter) as Record<string, unknown>);
  }
}

/**
 * `{$and: [{a: 1}, {b: 2}]}` as `{a: 1, b: 2}`: the same documents on MongoDB (a filter's fields
 * are ANDed), but FerretDB 1.24 on PostgreSQL pushes only top-level field conditions into its SQL
 * (`$and` is evaluated in Go over every row it reads), so the resolver's reference and
 * `repo@digest` lookups read ten rows instead of the whole collection. A condition whose field is
 * already taken stays in a (shorter) `$and`.
 */
function hoistAnd(filter: Record<string, unknown>): Record<string, unknown> {
  const { $and: conditions, ...rest } = filter;
  // An empty `$and` is MongoDB's error to give.
  if (!Array.isArray(conditions) || conditions.length === 0) return filter;
  const hoisted: Record<string, unknown> = { ...rest };
  const kept: unknown[] = [];
  for (const condition of conditions) {
    const entries =
      typeof condition === 'object' && condition !== null && !Array.isArray(condition)
        ? Object.entries(condition as Record<string, unknown>)
        : undefined;
    // An inner `$and` stays in the kept one: hoisted, the kept list would overwrite it.
    if (entries && entries.every(([key]) => key !== '$and' && !(key in hoisted)))
      Object.assign(hoisted, Object.fromEntries(entries));
    else kept.push(condition);
  }
  return kept.length === 0 ? hoisted : { ...hoisted, $and: kept };
}

/**
 * Moves documents written in the `id` layout (`_id` = id, no id field; earlier versions of this
 * catalog) to the `field` layout by copying `_id` into the field, in place. Idempotent and safe
 * with several replicas starting at once: each update is one atomic single-document write,
 * conditional on the field still missing, and they all write the same value. The `_id` stays the
 * string it was (never exposed; the original service looks entries up by the field too).
 */
async function migrateIdIntoField(
  collection: MongoNativeCollection<StoredShape>,
  idField: string,
): Promise<void> {
  const legacy = collection.find(
    { [idField]: { $exists: false }, _id: { $type: 'string' } },
    { projection: { _id: 1 } },
  );
  let batch: string[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    await collection.bulkWrite(
      batch.map((id) => ({
        updateOne: {
          filter: { _id: id, [idField]: { $exists: false } },
          update: { $set: { [idField]: id } },
        },
      })),
      { ordered: false },
    );
    batch = [];
  };
  for await (const { _id } of legacy) {
    if (typeof _id === 'string') batch.push(_id);
    if (batch.length >= 500) await flush();
  }
  await flush();
}

/** FerretDB answers `buildInfo` with its own `ferretdbVersion` beside the MongoDB version it mimics. */
async function isFerretDb(db: Db): Promise<boolean> {
  const info = await db.admin().command({ buildInfo: 1 });
  return 'ferretdbVersion' in info;
}

/**
 * Creates the indexes a collection lacks. Listing first keeps start-up idempotent everywhere:
 * re-creating an existing index is a no-op on MongoDB but crashes the connection on FerretDB 1.24.
 */
async function ensureIndexes<T extends Document>(
  collection: MongoNativeCollection<T>,
  indexes: IndexDescription[],
): Promise<void> {
  if (indexes.length === 0) return;
  let existing: Set<string>;
  try {
    existing = new Set((await collection.listIndexes().toArray()).map((index) => String(index.name)));
  } catch (error) {
    if (!(error instanceof MongoServerError && error.code === NAMESPACE_NOT_FOUND)) throw error;
    existing = new Set();
  }
  const missing = indexes.filter((index) => !existing.has(String(index.name)));
  if (missing.length === 0) return;
  try {
    await collection.createIndexes(missing);
  } catch (error) {
    // Another replica starting at the same moment created them first (FerretDB then closes our
    // connection rather than answering): fine if they are all there now.
    const now = new Set((await collection.listIndexes().toArray()).map((index) => String(index.name)));
    if (!missing.every((index) => now.has(String(index.name)))) throw error;
  }
}

/** Server codes that mean "this query is not acceptable" rather than "the server is in trouble". */
const QUERY_REFUSED_CODES = new Set([2 /* BadValue */, 9 /* FailedToParse */, 51091 /* invalid regex */]);

/** MaxTimeMSExpired: the server stopped the query at `maxTimeMS`. */
const MAX_TIME_EXPIRED = 50;
const DEFAULT_MAX_TIME_MS = 5_000;

async function refusedAsQueryRejected<T>(operation: Promise<T>, maxTimeMs?: number): Promise<T> {
  try {
    return await operation;
  } catch (error) {
    if (maxTimeMs !== undefined && error instanceof MongoServerError && error.code === MAX_TIME_EXPIRED)
      throw new QueryTimeoutError(maxTimeMs);
    if (
      error instanceof MongoServerError &&
      typeof error.code === 'number' &&
      QUERY_REFUSED_CODES.has(error.code)
    ) {
      throw new QueryRejectedError(`the database refused this filter: ${error.message}`);
    }
    throw error;
  }
}

/** BadValue on a write: the server cannot store this (valid) document, e.g. FerretDB and nested arrays. */
function asDocumentRejected(error: unknown): unknown {
  return error instanceof MongoServerError && error.code === BAD_VALUE
    ? new DocumentRejectedError(`the database cannot store this document: ${error.message}`)
    : error;
}
