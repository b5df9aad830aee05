/**
 * Repository names, tags and digests, validated with the regular expressions of the OCI
 * Distribution Specification v1.1. These values become path segments on disk, so nothing that
 * fails them ever reaches the storage layer (no `..`, no `%`, no absolute paths).
 */
import { DIGEST_ALGORITHMS, type Digest, type DigestAlgorithm } from '../digest.js';
import { OciError } from '../errors.js';

// Re-exported: the domain's callers keep one import for names, tags and digests.
export { DIGEST_ALGORITHMS, type Digest, type DigestAlgorithm };

/** `<name>`: path components of lowercase alphanumerics joined by `.`, `_`, `__` or dashes. */
export const NAME_PATTERN =
  /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
/** Distribution's limit; many clients and filesystems assume it. */
export const NAME_MAX_LENGTH = 255;
/** `<reference>` as a tag. */
export const TAG_PATTERN = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** `<digest>` = algorithm ":" encoded. */
export const DIGEST_PATTERN = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function validateName(name: string): string {
  if (name.length > NAME_MAX_LENGTH || !NAME_PATTERN.test(name)) {
    throw new OciError('NameInvalid', 'invalid repository name', { name });
  }
  return name;
}

export function isTag(reference: string): boolean {
  return TAG_PATTERN.test(reference);
}

/** Parses a digest; anything malformed or of an unsupported algorithm is `DIGEST_INVALID`. */
export function parseDigest(text: string): Digest {
  const separator = text.indexOf(':');
  const algorithm = text.slice(0, separator);
  const hex = text.slice(separator + 1);
  if (separator < 0 || !DIGEST_PATTERN.test(text) || !Object.hasOwn(DIGEST_ALGORITHMS, algorithm)) {
    throw new OciError('DigestInvalid', 'invalid digest', { digest: text });
  }
  const length = DIGEST_ALGORITHMS[algorithm as DigestAlgorithm];
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    throw new OciError('DigestInvalid', 'invalid digest', { digest: text });
  }
  return { algorithm: algorithm as DigestAlgorithm, hex, value: text };
}

/** A manifest reference: a digest when it contains `:`, else a tag. */
export type Reference =
  { readonly kind: 'digest'; readonly digest: Digest } | { readonly kind: 'tag'; readonly tag: string };

/**
 * Parses a manifest reference. A malformed tag is `MANIFEST_INVALID` when pushing and
 * `MANIFEST_UNKNOWN` (404) when reading or deleting: no such manifest can exist.
 */
export function parseReference(
  reference: string,
  onInvalidTag: 'ManifestInvalid' | 'ManifestUnknown',
): Reference {
  if (reference.includes(':')) return { kind: 'digest', digest: parseDigest(reference) };
  if (!isTag(reference)) throw new OciError(onInvalidTag, 'invalid tag', { tag: reference });
  return { kind: 'tag', tag: reference };
}
