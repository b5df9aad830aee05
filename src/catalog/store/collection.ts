import type { Filter, SortSpec } from '../model.js';

/**
 * The catalog's storage seam: one small generic collection of versioned JSON documents, with
 * two backends (a MongoDB collection, mongo-collection.ts; an SQLite table, embedded-collection.ts)
 * and one contract suite (test/contract/) run on both. Each kind of document is a typed
 * repository on top (registries.ts, health-store.ts): adding a kind costs a spec with its
 * indexes and a repository, not two stores.
 *
 * Stores persist whole documents. Update operators are applied by the domain layer
 * (src/catalog/language/) so both backends share one semantics; a collection only offers
 * compare-and-swap on an internal version, so concurrent writers never lose an update.
 */

/** A document as JSON text, with its version (`Collection.getText`). */
export interface VersionedText {
  readonly text: string;
  readonly version: number;
}

/** A document with the store's version counter (starts at 1, +1 per successful replace). */
export interface Versioned<T> {
  readonly document: T;
  readonly version: number;
}

/** A declared index: what queries on a field can be answered from, on both backends. */
export interface IndexSpec {
  /** A top-level field of the document. */
  readonly field: string;
  /**
   * `column`: a string (or number) field, kept in a column of the document's row (SQLite) or a
   * plain index (MongoDB). `multi`: an array of strings, one row per value in a side table
   * (SQLite) or a multikey index (MongoDB).
   */
  readonly kind: 'column' | 'multi';
  /** SQLite: the column's name (the value column of a side table for `multi`). */
  readonly column: string;
  /** SQLite: the side table of a `multi` index. */
  readonly table?: string;
}

/** What a kind of document declares to be stored. */
export interface CollectionSpec {
  /** The field holding the document's id (a string; MongoDB `_id` by default, SQLite primary key). */
  readonly idField: string;
  /**
   * How the MongoDB backend keys documents. `id` (default): `_id` is the id. `field`: the id
   * stays an ordinary field under a unique index and `_id` is whatever the writer gave (an
   * ObjectId the driver assigns for ours): the original AIOS service's layout, so both services
   * read each other's documents. Documents without the field whose `_id` is a string (written
   * in the `id` layout) are migrated at open by copying `_id` into the field. SQLite ignores it.
   */
  readonly mongoKey?: 'id' | 'field';
  readonly indexes: readonly IndexSpec[];
  /**
   * Indexes over several `column` fields of `indexes`, in order: a lookup by all of them reads
   * the matching rows only (`[repository, tag]`: 10 rows of 1M, where the `repository` index
   * alone reads every tag of the repository in every registry).
   */
  readonly compoundIndexes?: readonly (readonly string[])[];
}

export interface FindOptions {
  /** Sort keys in priority order; the id is always the final tie-breaker. */
  readonly sort: SortSpec;
  readonly skip: number;
  readonly limit: number;
}

export interface StreamOptions {
  readonly sort: SortSpec;
  readonly limit: number;
}

export type ReplaceResult<T> =
  | { readonly status: 'replaced'; readonly stored: Versioned<T> }
  | { readonly status: 'conflict' }
  | { readonly status: 'missing' };

/** One collection of documents of type `T`, keyed by the spec's `idField`. */
export interface Collection<T> {
  /** Inserts a new document at version 1. Throws `DuplicateIdError` when the id exists. */
  create(document: T): Promise<Versioned<T>>;
  /** Inserts each document that does not exist yet (one batch); returns the ids inserted. */
  createMany(documents: readonly T[]): Promise<Set<string>>;
  get(id: string): Promise<Versioned<T> | undefined>;
  /**
   * The document as JSON text with its version: the stored text where the backend keeps one (the
   * SQLite column, no parse), else the document serialised. Equal text and version mean an equal
   * document, so a caller may cache what it derives from a document under them (the fast read).
   */
  getText(id: string): Promise<VersionedText | undefined>;
  /** `getText` of each id that exists, by id (one statement on SQLite). */
  getTexts(ids: readonly string[]): Promise<Map<string, VersionedText>>;
  /**
   * Replaces the document with the same id if its version is still `expectedVersion`.
   * `conflict` means another writer got there first (re-read and retry); `missing` that it is gone.
   */
  replaceIfVersion(document: T, expectedVersion: number): Promise<ReplaceResult<T>>;
  /** The documents of these ids that exist, by id (read in batches where the backend can). */
  getMany(ids: readonly string[]): Promise<Map<string, Versioned<T>>>;
  /**
   * `replaceIfVersion` of each entry's document at its version, as one batch (one transaction on
   * SQLite, so one sync to disk instead of one per document); returns the ids replaced. An id
   * not returned had moved on or was gone: re-read and retry it alone.
   */
  replaceManyIfVersion(entries: ReadonlyArray<Versioned<T>>): Promise<Set<string>>;
  /** Returns false when there was nothing to delete. */
  delete(id: string): Promise<boolean>;
  /** Deletes every document matching `filter`. */
  deleteMany(filter: Filter): Promise<void>;
  find(filter: Filter, options: FindOptions): Promise<T[]>;
  /**
   * Every match in `sort` order (id last), at most `limit`, read from the database in batches as
   * the caller consumes them: for answers too large to hold whole (the unpaged query).
   */
  stream(filter: Filter, options: StreamOptions): AsyncIterable<T>;
  count(filter: Filter): Promise<number>;
  /**
   * A page and the number of all matches (`find` and `count` together): one pass over the
   * collection where the backend would scan for each (FerretDB, see mongo-collection.ts).
   */
  findPage(filter: Filter, options: FindOptions): Promise<{ items: T[]; total: number }>;
}

/** A backend: where collections live. */
export interface DocumentDatabase {
  /** Opens (creating if needed, with its indexes) the collection `name` holding documents as `spec` declares. */
  collection<T extends object>(name: string, spec: CollectionSpec): Promise<Collection<T>>;
  /** Resolves when the backing database answers; used by `/readyz`. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Raised by `create` when a document with the same id already exists. */
export class DuplicateIdError extends Error {
  override name = 'DuplicateIdError';
  constructor(readonly id: string) {
    super(`a document with id ${id} already exists`);
  }
}

/** The database refused a filter that the query language accepted (a backend limitation). */
export class QueryRejectedError extends Error {
  override name = 'QueryRejectedError';
}

/** A query ran past its time limit (`QUERY_MAX_TIME_MS`: MongoDB's `maxTimeMS`, the embedded backend's scan budget). */
export class QueryTimeoutError extends Error {
  override name = 'QueryTimeoutError';
  constructor(readonly maxTimeMs: number) {
    super(`the query ran longer than ${maxTimeMs} ms`);
  }
}

/** The database refused a document that our schema accepts (a backend limitation, e.g. nested arrays on FerretDB). */
export class DocumentRejectedError extends Error {
  override name = 'DocumentRejectedError';
}
