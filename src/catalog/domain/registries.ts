import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { ValidateFunction } from 'ajv';
import type { SchemaSet } from '../../shared/schemas.js';
import { toSchemaIssues } from '../../shared/schemas.js';
import {
  CatalogError,
  ConflictError,
  NotFoundError,
  PreconditionFailedError,
  UnprocessableError,
  ValidationError,
} from '../errors.js';
import type { ContainerRegistry, Filter, SortSpec, StoredRegistry } from '../model.js';
import {
  DocumentRejectedError,
  DuplicateIdError,
  QueryRejectedError,
  QueryTimeoutError,
  type VersionedText,
} from '../store/collection.js';
import { decodeStored, inFieldOrder, type RegistryStore } from '../store/registry-store.js';
import {
  applyUpdateSliced,
  InvalidUpdateError,
  UpdateBudgetError,
  DEFAULT_UPDATE_BUDGET,
} from '../language/mongo-semantics.js';
import { Slicer } from './slicer.js';
import { parseFilter } from '../language/query-language.js';
import { parseUpdate, type Update } from '../language/update-language.js';
import { CredentialCipher } from './credential-cipher.js';
import {
  credentialsOf,
  dropCredentials,
  hideKeptCredentials,
  keepMaskedCredentials,
  MASK,
  openCredentials,
  sealCredentials,
  touchesCredentials,
} from './credentials.js';
import { etagMatches } from './etags.js';
import { KeyedQueue } from './keyed-queue.js';
import { PAGE_LIMITS, parseId, type Page } from './parameters.js';

/** Answers whether a registry about to be created is reachable; a string is the reason it is not. */
export type ReachabilityCheck = (document: ContainerRegistry) => Promise<string | undefined>;

export interface RegistryServiceDeps {
  readonly store: RegistryStore;
  readonly schemas: SchemaSet;
  /** Used by `create` with `verify: true`. */
  readonly checkReachable?: ReachabilityCheck;
  /** Seals credentials at rest; without one, credentials are refused rather than stored in clear. */
  readonly cipher?: CredentialCipher;
  readonly newId?: () => string;
}

/** Matches of an unpaged query read before its answer starts (see `queryAll`). */
const UNPAGED_READ_AHEAD = 1000;

/** How often an update re-reads and retries after losing a compare-and-swap race. */
const MAX_UPDATE_ATTEMPTS = 100;

/**
 * Domain rules of the catalog: validation of bodies, the query and update languages, defaults,
 * write-only credentials, optimistic concurrency. HTTP handlers call one method each.
 */
export class RegistryService {
  private readonly store: RegistryStore;
  private readonly validateCreate: ValidateFunction;
  private readonly validateDocument: ValidateFunction;
  private readonly checkReachable: ReachabilityCheck | undefined;
  private readonly cipher: CredentialCipher | undefined;
  private readonly newId: () => string;
  /** Updates of one id wait for each other in this process (compare-and-swap still guards replicas). */
  private readonly updates = new KeyedQueue();

  constructor(deps: RegistryServiceDeps) {
    this.store = deps.store;
    this.validateCreate = deps.schemas.validator('container-registry-create.schema.json');
    this.validateDocument = deps.schemas.validator('container-registry.schema.json');
    this.checkReachable = deps.checkReachable;
    this.cipher = deps.cipher;
    this.newId = deps.newId ?? randomUUID;
  }

  async create(body: unknown, options: { verify?: boolean } = {}): Promise<StoredRegistry> {
    if (!this.validateCreate(body)) {
      throw ValidationError.of(toSchemaIssues(this.validateCreate.errors), 'Invalid container registry');
    }
    const input = body as Partial<ContainerRegistry>;
    const credentials = input.container_registry_config?.credentials;
    if (
      typeof credentials === 'object' &&
      credentials !== null &&
      Object.values(credentials).includes(MASK)
    ) {
      throw ValidationError.of(
        [
          {
            pointer: '/container_registry_config/credentials',
            message: `must hold real credentials, not the mask "${MASK}"`,
          },
        ],
        'Invalid container registry',
      );
    }
    const document: ContainerRegistry = {
      container_registry_id: (input.container_registry_id ?? this.newId()).toLowerCase(),
      container_registry_name: input.container_registry_name ?? '',
      container_registry_metadata: input.container_registry_metadata ?? {},
      container_registry_tags: input.container_registry_tags ?? [],
      container_registry_public_url: input.container_registry_public_url ?? '',
      container_registry_image_prefix: input.container_registry_image_prefix ?? '',
      container_registry_config: input.container_registry_config ?? {},
      container_registry_storage_info: input.container_registry_storage_info ?? {},
    };
    if (options.verify) {
      if (!this.checkReachable)
        throw new UnprocessableError('Registry verification is not available on this server');
      const problem = await this.checkReachable(document);
      if (problem !== undefined) {
        throw new UnprocessableError(
          `Container registry at ${document.container_registry_public_url} is not usable: ${problem}`,
        );
      }
    }
    sealCredentials(this.cipher, document, {});
    try {
      return await this.store.create(document);
    } catch (error) {
      if (error instanceof DuplicateIdError) {
        throw new ConflictError(`Container registry ${document.container_registry_id} already exists`);
      }
      throw asValidationError(error);
    }
  }

  async get(rawId: string): Promise<StoredRegistry> {
    const id = parseId(rawId);
    const stored = await this.store.get(id);
    if (!stored) throw new NotFoundError(id);
    return stored;
  }

  /**
   * The stored registry as JSON text with its version, unparsed on the embedded store: what the
   * fast read caches its answer under (`decode` turns it into what `get` returns).
   */
  async getText(rawId: string): Promise<VersionedText> {
    const id = parseId(rawId);
    const stored = await this.store.getText(id);
    if (!stored) throw new NotFoundError(id);
    return stored;
  }

  /** `getText` of each stored registry among `ids` (already-valid ids, e.g. from image records), by id. */
  async getTexts(ids: readonly string[]): Promise<Map<string, VersionedText>> {
    return this.store.getTexts(ids);
  }

  decode(stored: VersionedText): StoredRegistry {
    return decodeStored(stored);
  }

  /**
   * Applies an update with compare-and-swap: read, apply, validate the would-be document, write
   * if nobody wrote in between, otherwise retry on the fresh document. With `ifMatch`, a change
   * by someone else is a failed precondition instead of a retry.
   */
  async update(rawId: string, body: unknown, options: { ifMatch?: string } = {}): Promise<StoredRegistry> {
    const id = parseId(rawId);
    const update = parseUpdate(body, id);
    return this.updates.run(id, () => this.applyWithRetries(id, update, options));
  }

  private async applyWithRetries(
    id: string,
    update: Update,
    options: { ifMatch?: string },
  ): Promise<StoredRegistry> {
    // Each step below is linear in the document (up to 1 MB): between them the event loop gets
    // its turn once a slice's worth of work has run, so a large update is never one long stall.
    const slicer = new Slicer(DEFAULT_UPDATE_BUDGET.sliceMs);
    for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt++) {
      const current = await this.get(id);
      await slicer.pause();
      if (options.ifMatch !== undefined && !etagMatches(options.ifMatch, current))
        throw new PreconditionFailedError();
      const next = await applyOrRefuse(current.document, update);
      await slicer.pause();
      // Stored credentials belong to the old host: never send them to a new one.
      const hostChanged =
        next.container_registry_public_url !== current.document.container_registry_public_url;
      if (hostChanged && !touchesCredentials(update)) dropCredentials(next);
      const kept = hostChanged ? {} : credentialsOf(current.document);
      keepMaskedCredentials(next, kept);
      if (!this.validateDocument(hideKeptCredentials(next, kept))) {
        throw ValidationError.of(
          toSchemaIssues(this.validateDocument.errors),
          'The update would make the container registry invalid',
        );
      }
      await slicer.pause();
      sealCredentials(this.cipher, next, kept);
      const ordered = inFieldOrder(next);
      if (isDeepStrictEqual(ordered, current.document)) return current;
      await slicer.pause();
      const result = await this.store.replaceIfVersion(ordered, current.version).catch((error: unknown) => {
        throw asValidationError(error);
      });
      if (result.status === 'replaced') return result.stored;
      if (result.status === 'missing') throw new NotFoundError(id);
      if (options.ifMatch !== undefined) throw new PreconditionFailedError();
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 ** attempt)));
    }
    throw new ConflictError(`Container registry ${id} is being updated by too many clients at once; retry`);
  }

  async delete(rawId: string, options: { ifMatch?: string } = {}): Promise<void> {
    const id = parseId(rawId);
    if (options.ifMatch !== undefined) {
      const current = await this.get(id);
      if (!etagMatches(options.ifMatch, current)) throw new PreconditionFailedError();
    }
    if (!(await this.store.delete(id))) throw new NotFoundError(id);
  }

  /** Runs a filter; `onlyIds` further restricts the result (e.g. to registries of a given health). */
  async query(
    body: unknown,
    page: Page,
    onlyIds?: readonly string[],
  ): Promise<{ items: ContainerRegistry[]; total: number }> {
    const filter = filterOf(body, onlyIds);
    try {
      return await this.store.findPage(filter, page);
    } catch (error) {
      throw asInvalidFilter(error);
    }
  }

  /**
   * Every match of a filter (the query without `limit`/`skip`, as the original AIOS service
   * answered it), read from the store in batches as the caller consumes `items`. More matches
   * than `maxUnpaged` (`PAGE_LIMITS.maxUnpaged` unless given) is refused up front (a 400 asking
   * for paging) rather than cut short silently; entries created between the count and the read
   * are cut at the cap.
   *
   * The first `UNPAGED_READ_AHEAD` matches are read before answering: when the stream ends
   * there, they are the total and no count is run. A real catalog's answer is one pass over the
   * store, where a count first was a second one (a full scan on FerretDB, issue 13).
   */
  async queryAll(
    body: unknown,
    sort: SortSpec,
    onlyIds?: readonly string[],
    maxUnpaged: number = PAGE_LIMITS.maxUnpaged,
  ): Promise<{ items: AsyncIterable<ContainerRegistry>; total: number }> {
    const filter = filterOf(body, onlyIds);
    const stream = this.store.stream(filter, { sort, limit: maxUnpaged })[Symbol.asyncIterator]();
    const head: ContainerRegistry[] = [];
    let ended = false;
    try {
      while (head.length < Math.min(UNPAGED_READ_AHEAD, maxUnpaged + 1)) {
        const next = await stream.next();
        if (next.done) {
          ended = true;
          break;
        }
        head.push(next.value);
      }
      const total = ended ? head.length : await this.store.count(filter);
      if (total > maxUnpaged) {
        throw ValidationError.of(
          [{ pointer: '/limit', message: `required when more than ${maxUnpaged} entries match` }],
          `The filter matches ${total} entries, more than the ${maxUnpaged} a query without limit and skip returns; page with limit and skip`,
        );
      }
      const items = async function* () {
        try {
          yield* head;
          for (let next = await stream.next(); !next.done; next = await stream.next()) yield next.value;
        } catch (error) {
          throw asInvalidFilter(error);
        } finally {
          await stream.return?.();
        }
      };
      return { items: items(), total };
    } catch (error) {
      await stream.return?.();
      throw asInvalidFilter(error);
    }
  }

  /**
   * Key rotation: re-encrypts every stored credential that is not sealed with the current key
   * (the first of CREDENTIALS_KEYS), and seals values found in clear. Safe beside running servers: each entry is rewritten with
   * compare-and-swap like any update. Entries whose credentials no configured key opens are
   * reported, not changed.
   */
  async resealCredentials(options: { dryRun: boolean }): Promise<ResealReport> {
    const cipher = this.cipher;
    if (!cipher) throw new UnprocessableError('No credentials key is configured (CREDENTIALS_KEYS)');
    const report: ResealReport = { scanned: 0, resealed: [], unreadable: [] };
    const page = 500;
    for (let skip = 0; ; skip += page) {
      const batch = await this.store.find({}, { sort: [['container_registry_id', 1]], skip, limit: page });
      for (const { container_registry_id: id } of batch) {
        report.scanned++;
        const outcome = await this.updates.run(id, () => this.resealOne(id, cipher, options.dryRun));
        if (outcome !== 'current') report[outcome].push(id);
      }
      if (batch.length < page) return report;
    }
  }

  private async resealOne(
    id: string,
    cipher: CredentialCipher,
    dryRun: boolean,
  ): Promise<'current' | 'resealed' | 'unreadable'> {
    for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt++) {
      const current = await this.store.get(id);
      if (!current) return 'current'; // deleted meanwhile: nothing left to protect
      const credentials = credentialsOf(current.document);
      const stale = Object.entries(credentials).filter(
        (entry): entry is [string, string] =>
          typeof entry[1] === 'string' && CredentialCipher.keyIdOf(entry[1]) !== cipher.currentKeyId,
      );
      if (stale.length === 0) return 'current';
      const next = structuredClone(current.document);
      const resealed = credentialsOf(next);
      try {
        for (const [key, value] of stale) {
          // A value in clear (left by the original AIOS service) is sealed too.
          const plain = CredentialCipher.keyIdOf(value) === undefined ? value : cipher.open(value, id, key);
          resealed[key] = cipher.seal(plain, id, key);
        }
      } catch {
        return 'unreadable';
      }
      if (dryRun) return 'resealed';
      const result = await this.store.replaceIfVersion(next, current.version);
      if (result.status === 'replaced') return 'resealed';
      if (result.status === 'missing') return 'current';
    }
    throw new ConflictError(`Container registry ${id} is being updated by too many clients at once; retry`);
  }

  /** The stored credentials in clear, for the health prober; never for a response. */
  openCredentials(document: ContainerRegistry): Record<string, string> {
    return openCredentials(this.cipher, document);
  }
}

/** What `rotate-credentials` did: ids re-encrypted with the current key, and ids no key opens. */
export interface ResealReport {
  scanned: number;
  readonly resealed: string[];
  readonly unreadable: string[];
}

/** The filter of a query, restricted to `onlyIds` when given (e.g. registries of a given health). */
function filterOf(body: unknown, onlyIds: readonly string[] | undefined): Filter {
  const parsed = parseFilter(body);
  const byId = onlyIds && { container_registry_id: { $in: onlyIds } };
  return !byId ? parsed : Object.keys(parsed).length === 0 ? byId : { $and: [parsed, byId] };
}

/** A filter the database refused is the client's to change: 400 with the database's reason. */
function asInvalidFilter(error: unknown): unknown {
  if (error instanceof QueryRejectedError) return new ValidationError(`Invalid filter: ${error.message}`);
  if (error instanceof QueryTimeoutError)
    return new CatalogError(
      'unavailable',
      `The query took longer than the server allows (${error.maxTimeMs} ms, QUERY_MAX_TIME_MS): narrow the filter, e.g. with tags or a name, or page with a smaller limit`,
    );
  return error;
}

/** A document the database cannot store is the client's to change: 400 with the database's reason. */
function asValidationError(error: unknown): unknown {
  return error instanceof DocumentRejectedError
    ? new ValidationError(`Invalid document: ${error.message}`)
    : error;
}

/**
 * Applies the update operators, sliced (mongo-semantics.ts); what MongoDB would refuse is a 400
 * naming the path, and an update needing more work than its budget a 400 saying so.
 */
async function applyOrRefuse(document: ContainerRegistry, update: Update): Promise<ContainerRegistry> {
  try {
    return (await applyUpdateSliced(
      document as unknown as Record<string, unknown>,
      update,
    )) as unknown as ContainerRegistry;
  } catch (error) {
    if (error instanceof UpdateBudgetError) {
      throw ValidationError.of(
        [{ pointer: '/', message: error.message }],
        `The update needs more work than the server allows (${error.maxMs} ms): change fewer elements at once, or with a simpler condition`,
      );
    }
    if (error instanceof InvalidUpdateError) {
      throw ValidationError.of(
        [{ pointer: `/${error.path.split('.').join('/')}`, message: error.message }],
        'Invalid update',
      );
    }
    throw error;
  }
}
