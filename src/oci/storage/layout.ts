/**
 * Where everything lives under the storage root. Paths are built only here, only from validated
 * names (`domain/names.ts`), so no request can address anything outside these shapes.
 *
 *   <root>/
 *     blobs/<alg>/<hex[0:2]>/<hex>                  content, addressed by digest; written once
 *                                                    (upload file -> fsync -> rename), shared
 *                                                    by all repositories; manifests live here too
 *     repositories/<name>/                          <name> may have several components (a/b/c);
 *                                                    ours start with "_", name components never do
 *       _layers/<alg>/<hex>                         empty link: the blob was pushed or mounted
 *                                                    here, so it is readable in this repository
 *       _manifests/revisions/<alg>/<hex>            link: the manifest exists here; content = its
 *                                                    media type (so GET needs no JSON parsing)
 *       _manifests/tags/<tag>                       content = the digest the tag points to
 *       _referrers/<alg>/<subject-hex>/<alg>-<hex>  descriptor (JSON) of a manifest whose
 *                                                    `subject` is that digest, for the referrers API
 *     uploads/<uuid>/data                           bytes received so far for an upload session
 *     uploads/<uuid>/info                           JSON: repository, start time
 *     uploads/<uuid>/claims/<offset>-<generation>   a chunk's claim on the upload at that offset,
 *                                                    created exclusively (see domain/uploads.ts)
 *     _tmp/<uuid>                                   temp files of atomic writes (renamed away)
 *
 * Mtimes matter: `gc` keeps anything younger than its grace period, and a manifest push
 * refreshes the blobs, links and child revisions it references (never creating a blob).
 */
import type { Digest } from '../digest.js';

export const BLOBS_DIR = 'blobs';
export const REPOSITORIES_DIR = 'repositories';
export const UPLOADS_DIR = 'uploads';
export const TMP_DIR = '_tmp';

export const blobPath = (digest: Digest): string =>
  `${BLOBS_DIR}/${digest.algorithm}/${digest.hex.slice(0, 2)}/${digest.hex}`;

export const repositoryPath = (name: string): string => `${REPOSITORIES_DIR}/${name}`;

export const layersDir = (name: string): string => `${repositoryPath(name)}/_layers`;
export const layerLinkPath = (name: string, digest: Digest): string =>
  `${layersDir(name)}/${digest.algorithm}/${digest.hex}`;

export const revisionsDir = (name: string): string => `${repositoryPath(name)}/_manifests/revisions`;
export const revisionLinkPath = (name: string, digest: Digest): string =>
  `${revisionsDir(name)}/${digest.algorithm}/${digest.hex}`;

export const tagsDir = (name: string): string => `${repositoryPath(name)}/_manifests/tags`;
export const tagPath = (name: string, tag: string): string => `${tagsDir(name)}/${tag}`;

export const referrersDir = (name: string, subject: Digest): string =>
  `${repositoryPath(name)}/_referrers/${subject.algorithm}/${subject.hex}`;
export const referrerPath = (name: string, subject: Digest, referrer: Digest): string =>
  `${referrersDir(name, subject)}/${referrer.algorithm}-${referrer.hex}`;

export const uploadDir = (uploadId: string): string => `${UPLOADS_DIR}/${uploadId}`;
export const uploadDataPath = (uploadId: string): string => `${uploadDir(uploadId)}/data`;
export const uploadInfoPath = (uploadId: string): string => `${uploadDir(uploadId)}/info`;
/** The claim of the chunk starting at `offset`; `generation` counts takeovers of expired claims. */
export const uploadClaimPath = (uploadId: string, offset: number, generation: number): string =>
  `${uploadDir(uploadId)}/claims/${String(offset).padStart(16, '0')}-${generation}`;

/** Directory names inside a repository directory that are ours, not nested repositories. */
export const REPOSITORY_META_DIRS = new Set(['_layers', '_manifests', '_referrers']);
