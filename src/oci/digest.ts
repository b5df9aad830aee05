/**
 * The digest value type, below both storage and domain: storage paths are built from digests
 * (`storage/layout.ts`), and the domain parses and verifies them (`domain/names.ts`). Nothing
 * here imports anything of the registry.
 */

/** The digest algorithms we can verify, with the length of their lowercase hex encoding. */
export const DIGEST_ALGORITHMS = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof DIGEST_ALGORITHMS;

/** A digest we can verify and store: `algorithm:hex`. */
export interface Digest {
  readonly algorithm: DigestAlgorithm;
  readonly hex: string;
  /** The canonical `algorithm:hex` string. */
  readonly value: string;
}
