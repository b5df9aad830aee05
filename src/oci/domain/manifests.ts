/**
 * Manifest parsing and validation: what a manifest PUT must satisfy before anything is stored,
 * and what the registry needs to remember about it (references, subject, referrer descriptor).
 */
import { OciError } from '../errors.js';
import { parseDigest, type Digest } from './names.js';

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

/** The manifest media types we store and serve. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = Object.values(MEDIA_TYPES);
const INDEX_MEDIA_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);
/** Docker foreign layers are fetched from their `urls`, never pushed, so they need not exist. */
const FOREIGN_LAYER = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';
const OCI_NONDISTRIBUTABLE = 'application/vnd.oci.image.layer.nondistributable.';

/**
 * Most descriptors (config, layers, index children) one manifest may list. Distribution and Zot
 * bound a manifest only by its 4 MiB body, which holds some 20,000 descriptors; real images
 * have at most a few hundred layers (overlayfs stops at 128) and indexes a few dozen platforms.
 * Beyond the cap the PUT is `MANIFEST_INVALID` before any storage is touched.
 */
export const MAX_MANIFEST_DESCRIPTORS = 1_000;

/** An OCI content descriptor (the fields we read). */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly artifactType?: string;
  readonly annotations?: Record<string, string>;
}

/** What the registry keeps from a valid manifest. */
export interface ParsedManifest {
  readonly mediaType: string;
  /** Blobs that must exist in the repository (config and layers). */
  readonly blobs: readonly Digest[];
  /** Manifests that must exist in the repository (index children). */
  readonly manifests: readonly Digest[];
  readonly subject: Digest | undefined;
  readonly artifactType: string | undefined;
  readonly annotations: Record<string, string> | undefined;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(message: string): OciError {
  return new OciError('ManifestInvalid', `manifest invalid: ${message}`);
}

function descriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw invalid(`${where} is not a descriptor`);
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== 'string' || mediaType === '') throw invalid(`${where}.mediaType missing`);
  if (typeof digest !== 'string') throw invalid(`${where}.digest missing`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    throw invalid(`${where}.size invalid`);
  try {
    parseDigest(digest);
  } catch {
    throw invalid(`${where}.digest is not a valid digest`);
  }
  return value as unknown as Descriptor;
}

/** Base of a media type without parameters, lowercased (`Content-Type` may carry `; charset=`). */
export function baseMediaType(value: string | undefined): string | undefined {
  const base = value?.split(';')[0]?.trim().toLowerCase();
  return base === '' ? undefined : base;
}

/**
 * Validates a manifest body against its declared media type (`Content-Type` of the PUT, or the
 * body's `mediaType` when the header is absent). Unknown types and malformed JSON are
 * `MANIFEST_INVALID`.
 */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  let document: unknown;
  try {
    document = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('not valid JSON');
  }
  if (!isObject(document)) throw invalid('not a JSON object');
  const declared = typeof document.mediaType === 'string' ? document.mediaType : undefined;
  const header = baseMediaType(contentType);
  const mediaType = header ?? declared;
  if (mediaType === undefined) throw invalid('media type unknown: send Content-Type or mediaType');
  if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) throw invalid(`unsupported media type ${mediaType}`);
  if (declared !== undefined && declared !== mediaType) {
    throw invalid(`mediaType ${declared} does not match Content-Type ${mediaType}`);
  }
  if (document.schemaVersion !== 2) throw invalid('schemaVersion must be 2');

  const listed =
    (Array.isArray(document.manifests) ? document.manifests.length : 0) +
    (Array.isArray(document.layers) ? document.layers.length : 0);
  if (listed > MAX_MANIFEST_DESCRIPTORS)
    throw invalid(`lists ${listed} descriptors, more than the limit of ${MAX_MANIFEST_DESCRIPTORS}`);
  const blobs: Digest[] = [];
  const manifests: Digest[] = [];
  if (INDEX_MEDIA_TYPES.has(mediaType)) {
    if (!Array.isArray(document.manifests)) throw invalid('manifests must be an array');
    document.manifests.forEach((entry, i) =>
      manifests.push(parseDigest(descriptor(entry, `manifests[${i}]`).digest)),
    );
  } else {
    blobs.push(parseDigest(descriptor(document.config, 'config').digest));
    if (!Array.isArray(document.layers)) throw invalid('layers must be an array');
    document.layers.forEach((entry, i) => {
      const layer = descriptor(entry, `layers[${i}]`);
      const external = layer.mediaType === FOREIGN_LAYER || layer.mediaType.startsWith(OCI_NONDISTRIBUTABLE);
      if (!external) blobs.push(parseDigest(layer.digest));
    });
  }

  const subject =
    document.subject === undefined ? undefined : parseDigest(descriptor(document.subject, 'subject').digest);
  let artifactType = typeof document.artifactType === 'string' ? document.artifactType : undefined;
  // Spec: for an image manifest without artifactType, the referrers API reports config.mediaType.
  if (
    artifactType === undefined &&
    isObject(document.config) &&
    typeof document.config.mediaType === 'string'
  ) {
    artifactType = document.config.mediaType;
  }
  const annotations = isObject(document.annotations)
    ? (document.annotations as Record<string, string>)
    : undefined;
  return { mediaType, blobs, manifests, subject, artifactType, annotations };
}
