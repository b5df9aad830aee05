import type { Content } from '../domain/content.js';
import { parseDigest } from '../domain/names.js';
import type { StorageDriver } from '../storage/driver.js';
import { blobPath } from '../storage/layout.js';

/** What the catalog's image index records of a manifest (its `container-image` fields). */
export interface ManifestFacts {
  readonly media_type: string;
  /** Config and layers; for an index, the sum over the children stored here. */
  readonly size: number;
  readonly platforms: Array<{ os: string; architecture: string; variant?: string; digest: string }>;
}

/** Index children read for their sizes, and the largest image config read for its platform. */
const MAX_CHILDREN = 64;
const MAX_CONFIG_BYTES = 1024 * 1024;

type Json = Record<string, unknown>;

/**
 * Describes a stored manifest the way the catalog's crawler would: an image's platform from its
 * config blob and its size from config + layers; an index's platforms from its entries and its
 * size from the children stored in the repository. Undefined when the manifest is gone.
 */
export async function describeManifest(
  content: Content,
  driver: StorageDriver,
  repository: string,
  digest: string,
): Promise<ManifestFacts | undefined> {
  const manifest = await content
    .getManifest(repository, { kind: 'digest', digest: parseDigest(digest) })
    .catch(() => undefined);
  if (manifest === undefined) return undefined;
  const json = JSON.parse(manifest.content.toString('utf8')) as Json;
  if (Array.isArray(json.manifests)) {
    const children = (json.manifests as Json[]).filter((child) => typeof child.digest === 'string');
    const platforms = children.flatMap((child) => {
      const platform = child.platform as Json | undefined;
      if (typeof platform?.os !== 'string' || typeof platform.architecture !== 'string') return [];
      return [
        {
          os: platform.os,
          architecture: platform.architecture,
          ...(typeof platform.variant === 'string' ? { variant: platform.variant } : {}),
          digest: child.digest as string,
        },
      ];
    });
    let size = 0;
    for (const child of children.slice(0, MAX_CHILDREN)) {
      const facts = await describeImage(content, driver, repository, child.digest as string);
      size += facts?.size ?? 0;
    }
    return { media_type: manifest.mediaType, size, platforms };
  }
  return describeImage(content, driver, repository, digest, json, manifest.mediaType);
}

async function describeImage(
  content: Content,
  driver: StorageDriver,
  repository: string,
  digest: string,
  known?: Json,
  mediaType?: string,
): Promise<ManifestFacts | undefined> {
  let json = known;
  let type = mediaType;
  if (json === undefined) {
    const manifest = await content
      .getManifest(repository, { kind: 'digest', digest: parseDigest(digest) })
      .catch(() => undefined);
    if (manifest === undefined) return undefined;
    json = JSON.parse(manifest.content.toString('utf8')) as Json;
    type = manifest.mediaType;
  }
  const config = json.config as Json | undefined;
  const layers = Array.isArray(json.layers) ? (json.layers as Json[]) : [];
  const sizeOf = (descriptor: Json | undefined) =>
    typeof descriptor?.size === 'number' && descriptor.size >= 0 ? descriptor.size : 0;
  const size = sizeOf(config) + layers.reduce((sum, layer) => sum + sizeOf(layer), 0);
  const platforms: ManifestFacts['platforms'] = [];
  if (typeof config?.digest === 'string' && sizeOf(config) <= MAX_CONFIG_BYTES) {
    try {
      const raw = await driver.readFile(blobPath(parseDigest(config.digest)));
      const image = raw && (JSON.parse(raw.toString('utf8')) as Json);
      if (typeof image?.os === 'string' && typeof image.architecture === 'string')
        platforms.push({
          os: image.os,
          architecture: image.architecture,
          ...(typeof image.variant === 'string' ? { variant: image.variant } : {}),
          digest,
        });
    } catch {
      // Not an image config (an artifact): no platform.
    }
  }
  return { media_type: type ?? '', size, platforms };
}
