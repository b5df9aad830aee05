import { MAX_PATH_LENGTH, MAX_PATH_SEGMENTS } from './field-paths.js';

/** The fields of an image record (DESIGN.md section 8), as the query language sees them. */
export const IMAGE_FIELDS = [
  'container_registry_id',
  'repository',
  'tag',
  'digest',
  'media_type',
  'platforms',
  'size',
  'pull_reference',
  'referrers',
  'first_seen',
  'last_seen',
  'source',
] as const;

/** Dotted paths may go into these only, and only to their known members. */
const NESTED: Readonly<Record<string, readonly string[]>> = {
  platforms: ['os', 'architecture', 'variant', 'digest'],
  referrers: ['signatures', 'sboms', 'attestations', 'other', 'artifact_types'],
};

/**
 * Checks a field path of a filter or sort over image records; the problem as a sentence, or
 * undefined. The same rules as registry paths (field-paths.ts), over the image record's fields.
 */
export function checkImagePath(path: string): string | undefined {
  if (path.length === 0) return 'is an empty field path';
  if (path.length > MAX_PATH_LENGTH) return `is longer than ${MAX_PATH_LENGTH} characters`;
  const segments = path.split('.');
  if (segments.length > MAX_PATH_SEGMENTS) return `has more than ${MAX_PATH_SEGMENTS} segments`;
  const [field, ...rest] = segments;
  if (!(IMAGE_FIELDS as readonly string[]).includes(field ?? '')) {
    return `is not a field of an image record (fields: ${IMAGE_FIELDS.join(', ')})`;
  }
  if (rest.length === 0) return undefined;
  const members = NESTED[field!];
  if (!members) return `cannot use a dotted path: only ${Object.keys(NESTED).join(', ')} hold nested fields`;
  // `platforms.0.os` (an array position) is allowed, like MongoDB.
  const inner = /^\d{1,3}$/.test(rest[0]!) && field === 'platforms' ? rest.slice(1) : rest;
  if (inner.length !== 1 || !members.includes(inner[0]!)) {
    return `is not a member of ${field} (members: ${members.join(', ')})`;
  }
  return undefined;
}
