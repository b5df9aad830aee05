/**
 * The catalog's storage seam. One small interface, two implementations (`MongoStore`,
 * `EmbeddedStore`), one contract suite (test/contract/) run against both.
 *
 * Stores persist whole documents. Update operators are applied by the domain layer
 * (src/catalog/domain/update-language.ts) so both stores share one semantics; a store only
 * offers compare-and-swap on an internal version so concurrent writers never lose an update.
 */

/** The AIOS `ContainerRegistry` document, exactly the seed's eight fields. */
export interface ContainerRegistry {
  container_registry_id: string;
  container_registry_name: string;
  container_registry_metadata: Record<string, unknown>;
  container_registry_tags: string[];
  container_registry_public_url: string;
  container_registry_image_prefix: string;
  container_registry_config: Record<string, unknown>;
  container_registry_storage_info: Record<string, unknown>;
}

/** A document with the store's version counter (starts at 1, +1 per successful replace). */
export interface StoredRegistry {
  readonly document: ContainerRegistry;
  readonly version: number;
}

/** A validated MongoDB-style filter (see src/catalog/domain/query-language.ts). */
export type Filter = Readonly<Record<string, unknown>>;

/** Sort keys in priority order; 1 ascending, -1 descending. The id is always the final tie-breaker. */
export type SortSpec = ReadonlyArray<readonly [path: string, direction: 1 | -1]>;

export interface FindOptions {
  readonly sort: SortSpec;
  readonly skip: number;
  readonly limit: number;
}

export type ReplaceResult =
  | { readonly status: 'replaced'; readonly stored: StoredRegistry }
  | { readonly status: 'conflict' }
  | { readonly status: 'missing' };

export interface RegistryStore {
  /** Inserts a new document at version 1. Throws `DuplicateIdError` when the id exists. */
  create(document: ContainerRegistry): Promise<StoredRegistry>;
  get(id: string): Promise<StoredRegistry | undefined>;
  /**
   * Replaces the document with the same id if its version is still `expectedVersion`.
   * `conflict` means another writer got there first (re-read and retry); `missing` that it is gone.
   */
  replaceIfVersion(document: ContainerRegistry, expectedVersion: number): Promise<ReplaceResult>;
  /** Returns false when there was nothing to delete. */
  delete(id: string): Promise<boolean>;
  find(filter: Filter, options: FindOptions): Promise<ContainerRegistry[]>;
  count(filter: Filter): Promise<number>;
  /** Resolves when the backing database answers; used by `/readyz`. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Raised by `create` when a document with the same id already exists. */
export class DuplicateIdError extends Error {
  override name = 'DuplicateIdError';
  constructor(readonly id: string) {
    super(`container registry ${id} already exists`);
  }
}

/** The database refused a filter that the query language accepted (a backend limitation). */
export class QueryRejectedError extends Error {
  override name = 'QueryRejectedError';
}

/** A query ran past its time limit (`QUERY_MAX_TIME_MS`: MongoDB's `maxTimeMS`, the embedded store's scan budget). */
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
