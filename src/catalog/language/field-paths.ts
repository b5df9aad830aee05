import type { Issue } from '../errors.js';

/** The document's fields, in the seed's order. */
export const DOCUMENT_FIELDS = [
  'container_registry_id',
  'container_registry_name',
  'container_registry_metadata',
  'container_registry_tags',
  'container_registry_public_url',
  'container_registry_image_prefix',
  'container_registry_config',
  'container_registry_storage_info',
] as const;
export type DocumentField = (typeof DOCUMENT_FIELDS)[number];

/** Fields holding free-form objects: dotted paths may go inside these, and only these. */
export const OBJECT_FIELDS: ReadonlySet<string> = new Set([
  'container_registry_metadata',
  'container_registry_config',
  'container_registry_storage_info',
]);

/** Write-only secrets: never filtered, sorted or returned. */
export const CREDENTIALS_PATH = 'container_registry_config.credentials';

/**
 * Segments that name JavaScript's object machinery. In-process evaluation (mingo, our update
 * code) would walk into `Object.prototype` through them, so they are refused everywhere a key
 * or path is given: filters, sorts, updates, and keys inside values.
 */
export const PROTOTYPE_SEGMENTS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** The first prototype segment of a dotted key, as a sentence; undefined when there is none. */
export function prototypeSegmentProblem(key: string): string | undefined {
  const segment = key.split('.').find((part) => PROTOTYPE_SEGMENTS.has(part));
  return segment === undefined
    ? undefined
    : `has the segment "${segment}", which is not allowed (it names the JavaScript object prototype)`;
}

export const MAX_PATH_SEGMENTS = 16;
export const MAX_PATH_LENGTH = 512;

/**
 * Checks a field path used in a filter, a sort or an update. Returns the problem as a sentence,
 * or undefined when the path is acceptable.
 */
export function checkFieldPath(path: string, { allowSecrets = false } = {}): string | undefined {
  if (path.length === 0) return 'is an empty field path';
  if (path.length > MAX_PATH_LENGTH) return `is longer than ${MAX_PATH_LENGTH} characters`;
  const prototype = prototypeSegmentProblem(path);
  if (prototype) return prototype;
  const segments = path.split('.');
  const [field] = segments;
  if (!(DOCUMENT_FIELDS as readonly string[]).includes(field ?? '')) {
    return `is not a field of a container registry (fields: ${DOCUMENT_FIELDS.join(', ')})`;
  }
  if (segments.length > 1 && !OBJECT_FIELDS.has(field ?? '')) {
    return `cannot use a dotted path: only ${[...OBJECT_FIELDS].join(', ')} hold nested fields`;
  }
  if (segments.length > MAX_PATH_SEGMENTS) return `has more than ${MAX_PATH_SEGMENTS} segments`;
  if (segments.some((segment) => segment === '' || segment.startsWith('$') || segment.includes('\0'))) {
    return "has an empty segment or a segment starting with '$'";
  }
  if (!allowSecrets && (path === CREDENTIALS_PATH || path.startsWith(`${CREDENTIALS_PATH}.`))) {
    return 'is write-only (credentials cannot be queried or sorted on)';
  }
  return undefined;
}

/** Escapes a path segment for use inside a JSON pointer (RFC 6901). */
export function pointerSegment(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function issue(pointer: string, message: string): Issue {
  return { pointer, message };
}
