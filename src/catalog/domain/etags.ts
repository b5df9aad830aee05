import { createHash } from 'node:crypto';
import type { StoredRegistry } from '../model.js';

/** Entity tags of stored registries: `ETag` on reads and writes, `If-Match` on updates and deletes. */

/** A strong ETag over the stored document, so a delete-and-recreate never reuses one. */
export function etagOf(stored: StoredRegistry): string {
  const hash = createHash('sha256').update(JSON.stringify(stored.document)).update(`\0${stored.version}`);
  return `"${hash.digest('base64url').slice(0, 22)}"`;
}

/** `If-Match`: `*`, or a list of tags (weak ones compared as strong) naming the stored version. */
export function etagMatches(header: string, stored: StoredRegistry): boolean {
  if (header.trim() === '*') return true;
  const current = etagOf(stored);
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === current);
}
