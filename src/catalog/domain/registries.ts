import { createHash, randomUUID } from 'node:crypto';
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
import type { ContainerRegistry, RegistryStore, SortSpec, StoredRegistry } from '../store/registry-store.js';
import {
  DocumentRejectedError,
  DuplicateIdError,
  QueryRejectedError,
  QueryTimeoutError,
} from '../store/registry-store.js';
import { CredentialCipher, SEALED_PREFIX } from './credential-cipher.js';
import { CREDENTIALS_PATH, DOCUMENT_FIELDS } from './field-paths.js';
import { applyUpdate, InvalidUpdateError } from './mongo-semantics.js';
import { parseFilter, parseSort } from './query-language.js';
import { parseUpdate, type Update } from './update-language.js';

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

export interface Page {
  readonly limit: number;
  readonly skip: number;
  readonly sort: SortSpec;
}

export const PAGE_LIMITS = { defaultLimit: 100, maxLimit: 1000, maxSkip: 1_000_000 } as const;

/** How often an update re-reads and retries after losing a compare-and-swap race. */
const MAX_UPDATE_ATTEMPTS = 100;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const MASK = '*****';

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
    this.sealCredentials(document, {});
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
   * Applies an update with compare-and-swap: read, apply, validate the would-be document, write
   * if nobody wrote in between, otherwise retry on the fresh document. With `ifMatch`, a change
   * by someone else is a failed precondition instead of a retry.
   */
  async update(rawId: string, body: unknown, options: { ifMatch?: string } = {}): Promise<StoredRegistry> {
    const id = parseId(rawId);
    const update = parseUpdate(body, id);
    for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt++) {
      const current = await this.get(id);
      if (options.ifMatch !== undefined && !etagMatches(options.ifMatch, current))
        throw new PreconditionFailedError();
      const next = applyOrRefuse(current.document, update);
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
      this.sealCredentials(next, kept);
      const ordered = inFieldOrder(next);
      if (isDeepStrictEqual(ordered, current.document)) return current;
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
    const parsed = parseFilter(body);
    const byId = onlyIds && { container_registry_id: { $in: onlyIds } };
    const filter = !byId ? parsed : Object.keys(parsed).length === 0 ? byId : { $and: [parsed, byId] };
    try {
      const [items, total] = await Promise.all([this.store.find(filter, page), this.store.count(filter)]);
      return { items, total };
    } catch (error) {
      if (error instanceof QueryRejectedError) throw new ValidationError(`Invalid filter: ${error.message}`);
      if (error instanceof QueryTimeoutError)
        throw new CatalogError(
          'unavailable',
          `The query took longer than the server allows (${error.maxTimeMs} ms, QUERY_MAX_TIME_MS): narrow the filter, e.g. with tags or a name, or page with a smaller limit`,
        );
      throw error;
    }
  }

  /**
   * Encrypts every credential value that is new (not one of `kept`, the sealed values already
   * stored). Without a cipher, credentials are refused: they are never stored in clear.
   */
  private sealCredentials(document: ContainerRegistry, kept: Record<string, unknown>): void {
    const credentials = credentialsOf(document);
    const fresh = Object.entries(credentials).filter(([key, value]) => kept[key] !== value);
    if (fresh.length === 0) return;
    if (!this.cipher) {
      throw new UnprocessableError(
        'This catalog stores no registry credentials because no encryption key is configured (CREDENTIALS_KEYS); remove container_registry_config.credentials or ask the operator to configure a key',
      );
    }
    for (const [key, value] of fresh) {
      if (typeof value !== 'string') continue;
      if (value.startsWith(SEALED_PREFIX)) {
        throw ValidationError.of(
          [
            {
              pointer: `/container_registry_config/credentials/${key}`,
              message: 'must be the plain secret, not a sealed value',
            },
          ],
          'Invalid credentials',
        );
      }
      credentials[key] = this.cipher.seal(value, document.container_registry_id, key);
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
        const outcome = await this.resealOne(id, cipher, options.dryRun);
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
    const credentials = credentialsOf(document);
    const open: Record<string, string> = {};
    for (const [key, value] of Object.entries(credentials)) {
      if (typeof value !== 'string') continue;
      open[key] =
        this.cipher && value.startsWith(SEALED_PREFIX)
          ? this.cipher.open(value, document.container_registry_id, key)
          : value;
    }
    return open;
  }
}

/** What `rotate-credentials` did: ids re-encrypted with the current key, and ids no key opens. */
export interface ResealReport {
  scanned: number;
  readonly resealed: string[];
  readonly unreadable: string[];
}

/** A document the database cannot store is the client's to change: 400 with the database's reason. */
function asValidationError(error: unknown): unknown {
  return error instanceof DocumentRejectedError
    ? new ValidationError(`Invalid document: ${error.message}`)
    : error;
}

/** Validates a registry id from a URL path; ids are compared in lowercase. */
export function parseId(raw: string): string {
  const id = raw.toLowerCase();
  if (!UUID.test(id)) {
    throw ValidationError.of(
      [{ pointer: '/container_registry_id', message: 'must be a UUID' }],
      `Invalid container registry id "${raw.slice(0, 64)}"`,
    );
  }
  return id;
}

/** Parses `limit`, `skip` and `sort` query parameters. */
export function parsePage(query: { limit?: unknown; skip?: unknown; sort?: unknown }): Page {
  const limit = parseCount(query.limit, 'limit', PAGE_LIMITS.defaultLimit, 1, PAGE_LIMITS.maxLimit);
  const skip = parseCount(query.skip, 'skip', 0, 0, PAGE_LIMITS.maxSkip);
  if (query.sort !== undefined && typeof query.sort !== 'string') {
    throw ValidationError.of([{ pointer: '/sort', message: 'must be given once' }], 'Invalid sort');
  }
  return { limit, skip, sort: parseSort(query.sort) };
}

function parseCount(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  if (typeof value !== 'string' || !/^\d{1,9}$/.test(value) || Number(value) < min || Number(value) > max) {
    throw ValidationError.of(
      [{ pointer: `/${name}`, message: `must be an integer from ${min} to ${max}` }],
      `Invalid ${name}`,
    );
  }
  return Number(value);
}

/** A strong ETag over the stored document, so a delete-and-recreate never reuses one. */
export function etagOf(stored: StoredRegistry): string {
  const hash = createHash('sha256').update(JSON.stringify(stored.document)).update(`\0${stored.version}`);
  return `"${hash.digest('base64url').slice(0, 22)}"`;
}

function etagMatches(header: string, stored: StoredRegistry): boolean {
  if (header.trim() === '*') return true;
  const current = etagOf(stored);
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === current);
}

/** The document as clients see it: credentials replaced by a mask. */
export function toPublic(document: ContainerRegistry): ContainerRegistry {
  const credentials = document.container_registry_config.credentials;
  if (typeof credentials !== 'object' || credentials === null) return document;
  const masked = Object.fromEntries(Object.keys(credentials).map((key) => [key, MASK]));
  return {
    ...document,
    container_registry_config: { ...document.container_registry_config, credentials: masked },
  };
}

function touchesCredentials(update: Update): boolean {
  return Object.values(update).some((paths) =>
    Object.keys(paths ?? {}).some(
      (path) =>
        path === CREDENTIALS_PATH ||
        path.startsWith(`${CREDENTIALS_PATH}.`) ||
        (path === 'container_registry_config' && typeof paths?.[path] === 'object'),
    ),
  );
}

/**
 * A client that read a document (credentials shown as the mask) and writes it back unchanged
 * keeps the stored secrets: a masked value means "unchanged", never the literal mask.
 */
function keepMaskedCredentials(next: ContainerRegistry, stored: Record<string, unknown>): void {
  const credentials = next.container_registry_config?.credentials as Record<string, unknown> | undefined;
  if (typeof credentials !== 'object' || credentials === null) return;
  for (const [key, value] of Object.entries(credentials)) {
    if (value !== MASK) continue;
    if (typeof stored[key] === 'string') credentials[key] = stored[key];
    else delete credentials[key];
  }
}

/** Applies the update operators; what MongoDB would refuse is a 400 naming the path. */
function applyOrRefuse(document: ContainerRegistry, update: Update): ContainerRegistry {
  try {
    return applyUpdate(
      document as unknown as Record<string, unknown>,
      update,
    ) as unknown as ContainerRegistry;
  } catch (error) {
    if (error instanceof InvalidUpdateError) {
      throw ValidationError.of(
        [{ pointer: `/${error.path.split('.').join('/')}`, message: error.message }],
        'Invalid update',
      );
    }
    throw error;
  }
}

/** The credentials object of a document (live reference), or an empty object. */
function credentialsOf(document: ContainerRegistry): Record<string, unknown> {
  const credentials = document.container_registry_config?.credentials;
  return typeof credentials === 'object' && credentials !== null && !Array.isArray(credentials)
    ? (credentials as Record<string, unknown>)
    : {};
}

/** A copy for schema validation in which kept (sealed) values stand as the mask: sealing lengthens them. */
function hideKeptCredentials(document: ContainerRegistry, kept: Record<string, unknown>): ContainerRegistry {
  const credentials = credentialsOf(document);
  if (!Object.values(credentials).some((value) => value !== undefined && Object.values(kept).includes(value)))
    return document;
  const view = Object.fromEntries(
    Object.entries(credentials).map(([key, value]) => [key, kept[key] === value ? MASK : value]),
  );
  return {
    ...document,
    container_registry_config: { ...document.container_registry_config, credentials: view },
  };
}

function dropCredentials(document: ContainerRegistry): void {
  if (typeof document.container_registry_config === 'object' && document.container_registry_config !== null) {
    delete document.container_registry_config.credentials;
  }
}

/** Keeps the seed's field order whatever order the update produced. */
function inFieldOrder(document: ContainerRegistry): ContainerRegistry {
  return Object.fromEntries(
    DOCUMENT_FIELDS.map((field) => [field, document[field]]),
  ) as unknown as ContainerRegistry;
}
