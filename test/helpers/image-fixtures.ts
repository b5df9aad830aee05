/**
 * Images for the image index tests, pushed over plain HTTP to any registry (ours, Distribution):
 * single-platform images, multi-arch indexes, and referrer artifacts (signatures, SBOMs) made by
 * hand with cosign's and SPDX's media types, either as `subject` referrers or through the OCI
 * fallback tag `sha256-<hex>` and cosign's `sha256-<hex>.sig` tag.
 */
import { pushBlob, sha256 } from './registry.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const COSIGN_SIGNATURE = 'application/vnd.dev.cosign.artifact.sig.v1+json';
export const SPDX_SBOM = 'application/spdx+json';
const EMPTY = 'application/vnd.oci.empty.v1+json';

export interface Pushed {
  readonly digest: string;
  readonly size: number;
  readonly bytes: Buffer;
}

/** An OCI descriptor (media type, digest, size) of `bytes`. */
function descriptor(mediaType: string, bytes: Buffer): { mediaType: string; digest: string; size: number } {
  return { mediaType, digest: sha256(bytes), size: bytes.length };
}

export async function putManifest(
  url: string,
  repository: string,
  reference: string,
  body: Buffer,
  mediaType: string,
  headers: Record<string, string> = {},
): Promise<void> {
  const response = await fetch(`${url}/v2/${repository}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'Content-Type': mediaType, ...headers },
    body,
  });
  if (response.status !== 201)
    throw new Error(`PUT manifest ${repository}:${reference}: ${response.status} ${await response.text()}`);
}

/** An image for one platform under `tag` (by digest when `tag` is null); size is config + layer bytes. */
export async function pushPlatformImage(
  url: string,
  repository: string,
  tag: string | null,
  platform: { os: string; architecture: string; variant?: string },
  layer = Buffer.from(`layer of ${repository}:${tag} ${platform.architecture}`),
): Promise<Pushed> {
  const config = Buffer.from(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: [] } }));
  await pushBlob(url, repository, config);
  await pushBlob(url, repository, layer);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: descriptor('application/vnd.oci.image.config.v1+json', config),
      layers: [descriptor('application/vnd.oci.image.layer.v1.tar', layer)],
    }),
  );
  await putManifest(url, repository, tag ?? sha256(manifest), manifest, OCI_MANIFEST);
  return { digest: sha256(manifest), size: config.length + layer.length, bytes: manifest };
}

/** A multi-arch index under `tag` over images pushed by digest. */
export async function pushIndex(
  url: string,
  repository: string,
  tag: string,
  platforms: ReadonlyArray<{ os: string; architecture: string; variant?: string }>,
): Promise<Pushed & { children: Pushed[] }> {
  const children: Pushed[] = [];
  for (const platform of platforms) {
    const child = await pushPlatformImage(url, repository, null, platform);
    children.push(child);
  }
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: children.map((child, i) => ({
        mediaType: OCI_MANIFEST,
        digest: child.digest,
        size: child.bytes.length,
        platform: platforms[i],
      })),
    }),
  );
  await putManifest(url, repository, tag, index, OCI_INDEX);
  return {
    digest: sha256(index),
    size: children.reduce((sum, child) => sum + child.size, 0),
    bytes: index,
    children,
  };
}

/** An artifact of `artifactType` whose `subject` is `subject` (a referrer), pushed by digest. */
export async function pushReferrer(
  url: string,
  repository: string,
  subject: Pushed,
  artifactType: string,
): Promise<Pushed> {
  const empty = Buffer.from('{}');
  const payload = Buffer.from(JSON.stringify({ type: artifactType, subject: subject.digest }));
  await pushBlob(url, repository, empty);
  await pushBlob(url, repository, payload);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType,
      config: descriptor(EMPTY, empty),
      layers: [descriptor(artifactType, payload)],
      subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.length },
    }),
  );
  await putManifest(url, repository, sha256(manifest), manifest, OCI_MANIFEST);
  return { digest: sha256(manifest), size: empty.length + payload.length, bytes: manifest };
}

/**
 * The OCI referrers fallback tag `sha256-<hex>` of `subject`: an index listing `referrers`
 * with their artifact types, as clients push it to registries without the referrers API.
 */
export async function pushFallbackTag(
  url: string,
  repository: string,
  subject: Pushed,
  referrers: ReadonlyArray<{ pushed: Pushed; artifactType: string }>,
): Promise<void> {
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: referrers.map(({ pushed, artifactType }) => ({
        mediaType: OCI_MANIFEST,
        digest: pushed.digest,
        size: pushed.bytes.length,
        artifactType,
      })),
    }),
  );
  await putManifest(url, repository, `sha256-${subject.digest.slice(7)}`, index, OCI_INDEX);
}

/** cosign's tag scheme: a signature manifest under `sha256-<hex>.sig`. */
export async function pushCosignSignatureTag(
  url: string,
  repository: string,
  subject: Pushed,
): Promise<void> {
  const empty = Buffer.from('{}');
  const payload = Buffer.from(
    JSON.stringify({ critical: { image: { 'docker-manifest-digest': subject.digest } } }),
  );
  await pushBlob(url, repository, empty);
  await pushBlob(url, repository, payload);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: descriptor('application/vnd.oci.image.config.v1+json', empty),
      layers: [
        {
          ...descriptor('application/vnd.dev.cosign.simplesigning.v1+json', payload),
          annotations: { 'dev.cosignproject.cosign/signature': 'MEUCIQ' },
        },
      ],
    }),
  );
  await putManifest(url, repository, `sha256-${subject.digest.slice(7)}.sig`, manifest, OCI_MANIFEST);
}
