import {
  MongoClient,
  MongoServerError,
  type Collection,
  type Db,
  type Document,
  type IndexDescription,
  type Sort,
} from 'mongodb';
import type {
  ContainerRegistry,
  Filter,
  FindOptions,
  RegistryStore,
  ReplaceResult,
  StoredRegistry,
} from './registry-store.js';
import {
  DocumentRejectedError,
  DuplicateIdError,
  QueryRejectedError,
  QueryTimeoutError,
} from './registry-store.js';

/**
 * MongoDB store (official driver). `_id` is the registry id; `_version` is the internal
 * compare-and-swap counter, never returned. Works on standalone servers, replica sets and sharded
 * clusters (`_id` is a fine shard key; nothing here needs transactions).
 *
 * Each replace first claims the version it will write, by inserting `<id>@<version>` into a
 * claims collection: a unique-key insert is atomic on every MongoDB-compatible server, while a
 * conditional replace is not on FerretDB 1.24 (it queries, then writes by `_id`, so two writers
 * of the same version could both win and one update would be lost). The claim is removed once
 * the write is done; a writer that died holding one is overtaken after CLAIM_TTL_MS.
 */

interface VersionClaim {
  _id: string;
  at: Date;
}

/** How long a claim may be held; a replace takes milliseconds, so only a dead writer exceeds it. */
const CLAIM_TTL_MS = 30_000;

interface StoredShape extends Omit<ContainerRegistry, 'container_registry_id'> {
  _id: string;
  _version: number;
}

const DUPLICATE_KEY = 11000;

export interface MongoStoreOptions {
  readonly uri: string;
  readonly database?: string;
  readonly collection?: string;
  /** `maxTimeMS` of every query and count: the server stops a slow filter instead of running on. */
  readonly maxTimeMs?: number;
}

export class MongoStore implements RegistryStore {
  private readonly claims: Collection<VersionClaim>;
  private maxTimeMs = DEFAULT_MAX_TIME_MS;

  private constructor(
    private readonly client: MongoClient,
    /** The database, for stores that keep their own collections beside this one (health records). */
    readonly db: Db,
    private readonly collection: Collection<StoredShape>,
  ) {
    this.claims = db.collection<VersionClaim>(`${collection.collectionName}_version_claims`);
  }

  /** Connects, checks the server answers, and creates the indexes. */
  static async connect(options: MongoStoreOptions): Promise<MongoStore> {
    const client = new MongoClient(options.uri, { serverSelectionTimeoutMS: 10_000 });
    await client.connect();
    const db = client.db(options.database ?? 'assets');
    const store = new MongoStore(
      client,
      db,
      db.collection<StoredShape>(options.collection ?? 'container_registry'),
    );
    store.maxTimeMs = options.maxTimeMs ?? DEFAULT_MAX_TIME_MS;
    try {
      await store.ensureIndexes();
    } catch (error) {
      await client.close();
      throw error;
    }
    return store;
  }

  /** Indexes for the common queries: tags (multikey) and name. */
  private async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.collection, [
      { key: { container_registry_tags: 1 }, name: 'container_registry_tags' },
      { key: { container_registry_name: 1 }, name: 'container_registry_name' },
    ]);
  }

  async create(document: ContainerRegistry): Promise<StoredRegistry> {
    try {
      await this.collection.insertOne(toStored(document, 1));
    } catch (error) {
      if (error instanceof MongoServerError && error.code === DUPLICATE_KEY)
        throw new DuplicateIdError(document.container_registry_id);
      throw asDocumentRejected(error);
    }
    return { document, version: 1 };
  }

  async get(id: string): Promise<StoredRegistry | undefined> {
    const stored = await this.collection.findOne({ _id: id });
    return stored ? { document: fromStored(stored), version: stored._version } : undefined;
  }

  async replaceIfVersion(document: ContainerRegistry, expectedVersion: number): Promise<ReplaceResult> {
    const id = document.container_registry_id;
    const claim = `${id}@${expectedVersion + 1}`;
    if (!(await this.claim(claim))) return { status: 'conflict' };
    try {
      const result = await this.collection
        .replaceOne({ _id: id, _version: expectedVersion }, toStored(document, expectedVersion + 1))
        .catch((error: unknown) => Promise.reject(asDocumentRejected(error)));
      if (result.matchedCount === 1)
        return { status: 'replaced', stored: { document, version: expectedVersion + 1 } };
    } finally {
      // After the write: a writer still holding the old version now finds nothing to replace.
      await this.claims.deleteOne({ _id: claim });
    }
    return (await this.collection.countDocuments({ _id: id }, { limit: 1 })) > 0
      ? { status: 'conflict' }
      : { status: 'missing' };
  }

  /** True when this writer alone may write the claimed version. */
  private async claim(claim: string): Promise<boolean> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await this.claims.insertOne({ _id: claim, at: new Date() });
        return true;
      } catch (error) {
        if (!(error instanceof MongoServerError && error.code === DUPLICATE_KEY)) throw error;
      }
      const held = await this.claims.findOne({ _id: claim });
      if (held && Date.now() - held.at.getTime() < CLAIM_TTL_MS) return false;
      // Left by a writer that died between claim and write: take it over, once.
      if (held) await this.claims.deleteOne({ _id: claim, at: held.at });
    }
    return false;
  }

  async delete(id: string): Promise<boolean> {
    return (await this.collection.deleteOne({ _id: id })).deletedCount === 1;
  }

  async find(filter: Filter, options: FindOptions): Promise<ContainerRegistry[]> {
    const sort: Sort = Object.fromEntries(
      options.sort.map(([path, direction]) => [path === 'container_registry_id' ? '_id' : path, direction]),
    );
    if (!('_id' in sort)) (sort as Record<string, 1 | -1>)._id = 1;
    const cursor = this.collection
      .find(toMongoFilter(filter))
      .sort(sort)
      .skip(options.skip)
      .limit(options.limit)
      .maxTimeMS(this.maxTimeMs);
    return (await refusedAsQueryRejected(cursor.toArray(), this.maxTimeMs)).map(fromStored);
  }

  async count(filter: Filter): Promise<number> {
    return refusedAsQueryRejected(
      this.collection.countDocuments(toMongoFilter(filter), { maxTimeMS: this.maxTimeMs }),
      this.maxTimeMs,
    );
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

/**
 * Creates the indexes a collection lacks. Listing first keeps start-up idempotent everywhere:
 * re-creating an existing index is a no-op on MongoDB but crashes the connection on FerretDB 1.24.
 */
export async function ensureIndexes<T extends Document>(
  collection: Collection<T>,
  indexes: IndexDescription[],
): Promise<void> {
  let existing: Set<string>;
  try {
    existing = new Set((await collection.listIndexes().toArray()).map((index) => String(index.name)));
  } catch (error) {
    if (!(error instanceof MongoServerError && error.code === NAMESPACE_NOT_FOUND)) throw error;
    existing = new Set();
  }
  const missing = indexes.filter((index) => !existing.has(String(index.name)));
  if (missing.length > 0) await collection.createIndexes(missing);
}

const NAMESPACE_NOT_FOUND = 26;

/** Server codes that mean "this query is not acceptable" rather than "the server is in trouble". */
const QUERY_REFUSED_CODES = new Set([2 /* BadValue */, 9 /* FailedToParse */, 51091 /* invalid regex */]);

/** MaxTimeMSExpired: the server stopped the query at `maxTimeMS`. */
const MAX_TIME_EXPIRED = 50;
const DEFAULT_MAX_TIME_MS = 5_000;

async function refusedAsQueryRejected<T>(operation: Promise<T>, maxTimeMs: number): Promise<T> {
  try {
    return await operation;
  } catch (error) {
    if (error instanceof MongoServerError && error.code === MAX_TIME_EXPIRED)
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

const BAD_VALUE = 2;

function toStored(document: ContainerRegistry, version: number): StoredShape {
  const { container_registry_id, ...fields } = document;
  return { _id: container_registry_id, ...fields, _version: version };
}

/** The document in the seed's field order, without the internal fields. */
function fromStored(stored: StoredShape): ContainerRegistry {
  return {
    container_registry_id: stored._id,
    container_registry_name: stored.container_registry_name,
    container_registry_metadata: stored.container_registry_metadata,
    container_registry_tags: stored.container_registry_tags,
    container_registry_public_url: stored.container_registry_public_url,
    container_registry_image_prefix: stored.container_registry_image_prefix,
    container_registry_config: stored.container_registry_config,
    container_registry_storage_info: stored.container_registry_storage_info,
  };
}

/** The stored id field is `_id`: rewrite it wherever a filter names it. */
function toMongoFilter(filter: Filter): Record<string, unknown> {
  const rewrite = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(rewrite);
    if (typeof node !== 'object' || node === null) return node;
    return Object.fromEntries(
      Object.entries(node).map(([key, value]) => [
        key === 'container_registry_id' ? '_id' : key,
        key === '$and' || key === '$or' || key === '$nor' ? rewrite(value) : value,
      ]),
    );
  };
  return rewrite(filter) as Record<string, unknown>;
}
