import { ValidationError } from '../errors.js';
import { parseSort, type PathCheck } from '../language/query-language.js';
import type { SortSpec } from '../model.js';

/** The request parameters every use case shares: a registry id from the path, and paging. */

export interface Page {
  readonly limit: number;
  readonly skip: number;
  readonly sort: SortSpec;
}

/**
 * `maxUnpaged`: the most entries a query without `limit`/`skip` returns (it returns every match,
 * as the original AIOS service did); far above any real catalog, it only bounds a runaway answer.
 */
export const PAGE_LIMITS = {
  defaultLimit: 100,
  maxLimit: 1000,
  maxSkip: 1_000_000,
  maxUnpaged: 100_000,
} as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

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

/** True when the query asks for a page (`limit` or `skip` given); otherwise it gets every match. */
export function isPaged(query: { limit?: unknown; skip?: unknown }): boolean {
  return query.limit !== undefined || query.skip !== undefined;
}

/** Parses `limit`, `skip` and `sort` query parameters (`sort` over registry fields unless `checkPath` says). */
export function parsePage(
  query: { limit?: unknown; skip?: unknown; sort?: unknown },
  checkPath?: PathCheck,
): Page {
  const limit = parseCount(query.limit, 'limit', PAGE_LIMITS.defaultLimit, 1, PAGE_LIMITS.maxLimit);
  const skip = parseCount(query.skip, 'skip', 0, 0, PAGE_LIMITS.maxSkip);
  if (query.sort !== undefined && typeof query.sort !== 'string') {
    throw ValidationError.of([{ pointer: '/sort', message: 'must be given once' }], 'Invalid sort');
  }
  return { limit, skip, sort: parseSort(query.sort, checkPath) };
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
