import { DOCUMENT_FIELDS } from '../language/field-paths.js';
import type { ContainerRegistry, Filter, StoredRegistry } from '../model.js';
import type {
  CollectionSpec,
  DocumentDatabase,
  FindOptions,
  ReplaceResult,
  StreamOptions,
  VersionedText,
} from './collection.js';

/**
 * The registry documents: a typed repository on one generic collection (collection.ts). The
 * declared indexes serve the common queries (by tag, by name) on both backends.
 */
export const REGISTRIES: CollectionSpec = {
  idField: 'container_registry_id',
  // The original AIOS service's layout (DESIGN 4): `container_registry_id` is a field, `_id` an ObjectId.
  mongoKey: 'field',
  indexes: [
    { field: 'container_registry_name', kind: 'column', column: 'name' },
    { field: 'container_registry_tags', kind: 'multi', table: 'registry_tags', column: 'tag' },
  ],
};

/** Where the catalog keeps its registry documents (and what `/readyz` asks). */
export interface RegistryStore {
  /** Inserts a new document at version 1. Throws `DuplicateIdError` when the id exists. */
  create(document: ContainerRegistry): Promise<StoredRegistry>;
  get(id: string): Promise<StoredRegistry | undefined>;
  /** The stored JSON text and version, unparsed where the backend allows (see `decodeStored`). */
  getText(id: string): Promise<VersionedText | undefined>;
  /** `getText` of each id that exists, by id. */
  getTexts(ids: readonly string[]): Promise<Map<string, VersionedText>>;
  /** Compare-and-swap on the version: `conflict` means re-read and retry, `missing` that it is gone. */
  replaceIfVersion(
    document: ContainerRegistry,
    expectedVersion: number,
  ): Promise<ReplaceResult<ContainerRegistry>>;
  /** Returns false when there was nothing to delete. */
  delete(id: string): Promise<boolean>;
  find(filter: Filter, options: FindOptions): Promise<ContainerRegistry[]>;
  /** Every match in order, at most `limit`, read in batches as consumed (the unpaged query). */
  stream(filter: Filter, options: StreamOptions): AsyncIterable<ContainerRegistry>;
  count(filter: Filter): Promise<number>;
  /** A page and the number of all matches, in one pass where the backend allows. */
  findPage(filter: Filter, options: FindOptions): Promise<{ items: ContainerRegistry[]; total: number }>;
  /** Resolves when the backing database answers; used by `/readyz`. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Opens the registries' collection `name` (SQLite table or MongoDB collection) in `database`. */
export async function openRegistryStore(database: DocumentDatabase, name: string): Promise<RegistryStore> {
  const collection = await database.collection<ContainerRegistry>(name, REGISTRIES);
  return {
    create: (document) => collection.create(document),
    get: async (id) => {
      const stored = await collection.get(id);
      return stored && { document: inFieldOrder(stored.document), version: stored.version };
    },
    getText: (id) => collection.getText(id),
    getTexts: (ids) => collection.getTexts(ids),
    replaceIfVersion: (document, expectedVersion) => collection.replaceIfVersion(document, expectedVersion),
    delete: (id) => collection.delete(id),
    find: async (filter, options) => (await collection.find(filter, options)).map(inFieldOrder),
    stream: async function* (filter, options) {
      for await (const document of collection.stream(filter, options)) yield inFieldOrder(document);
    },
    count: (filter) => collection.count(filter),
    findPage: async (filter, options) => {
      const { items, total } = await collection.findPage(filter, options);
      return { items: items.map(inFieldOrder), total };
    },
    ping: () => database.ping(),
    close: () => database.close(),
  };
}

/** The registry `getText` returned, as `get` returns it. */
export function decodeStored(stored: VersionedText): StoredRegistry {
  return { document: inFieldOrder(JSON.parse(stored.text) as ContainerRegistry), version: stored.version };
}

/** The seed's eight fields in the seed's order, whatever order the backend or an update produced. */
export function inFieldOrder(document: ContainerRegistry): ContainerRegistry {
  return Object.fromEntries(
    DOCUMENT_FIELDS.map((field) => [field, document[field]]),
  ) as unknown as ContainerRegistry;
}
