import type { ContainerRegistry, Filter, SortSpec, StoredRegistry } from '../model.js';
/**
 * The catalog's storage seam. One small interface, two implementations (`MongoStore`,
 * `EmbeddedStore`), one contract suite (test/contract/) run against both.
 *
 * Stores persist whole documents. Update operators are applied by the domain layer
 * (src/catalog/language/update-language.ts) so both stores share one semantics; a store only
 * offers compare-and-swap on an internal version so concurrent writers never lose an update.
 */

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

/** The database refused a document that our schema accepts (a backend limitation, e.g. nested arrays on FerretDB). */
export class DocumentRejectedError extends Error {
  override name = 'DocumentRejectedError';
}
