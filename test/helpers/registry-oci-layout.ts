/**
 * Writes OCI image layouts (oci-layout + index.json + blobs/) directly, so tests need no image
 * tooling: a multi-layer image, and a multi-arch index of two images.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { sha256 } from './registry.js';

export interface LayoutDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly platform?: { architecture: string; os: string };
  readonly annotations?: Record<string, string>;
}

export class OciLayoutWriter {
  readonly blobs = new Map<string, Buffer>();
  constructor(readonly dir: string) {}

  add(content: Buffer, mediaType: string): LayoutDescriptor {
    const digest = sha256(content);
    this.blobs.set(digest, content);
    return { mediaType, digest, size: content.length };
  }

  /** An image of `layerCount` gzip layers of random bytes; returns its manifest descriptor. */
  image(layerCount: number, architecture: string): LayoutDescriptor {
    const raw = Array.from({ length: layerCount }, (_, i) => randomBytes(64 * 1024 + i * 1000));
    const layers = raw.map((bytes) =>
      this.add(gzipSync(bytes), 'application/vnd.oci.image.layer.v1.tar+gzip'),
    );
    const config = this.add(
      Buffer.from(
        JSON.stringify({
          architecture,
          os: 'linux',
          rootfs: { type: 'layers', diff_ids: raw.map((bytes) => sha256(bytes)) },
        }),
      ),
      'application/vnd.oci.image.config.v1+json',
    );
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config,
        layers,
      }),
    );
    return {
      ...this.add(manifest, 'application/vnd.oci.image.manifest.v1+json'),
      platform: { architecture, os: 'linux' },
    };
  }

  index(children: LayoutDescriptor[]): LayoutDescriptor {
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: children,
      }),
    );
    return this.add(index, 'application/vnd.oci.image.index.v1+json');
  }

  /** Writes the layout with `refs` (ref name -> descriptor) in index.json. */
  async write(refs: Record<string, LayoutDescriptor>): Promise<void> {
    await fs.mkdir(path.join(this.dir, 'blobs', 'sha256'), { recursive: true });
    await fs.writeFile(path.join(this.dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    for (const [digest, content] of this.blobs) {
      await fs.writeFile(path.join(this.dir, 'blobs', 'sha256', digest.slice('sha256:'.length)), content);
    }
    const manifests = Object.entries(refs).map(([ref, descriptor]) => ({
      mediaType: descriptor.mediaType,
      digest: descriptor.digest,
      size: descriptor.size,
      annotations: { 'org.opencontainers.image.ref.name': ref },
    }));
    await fs.writeFile(path.join(this.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
  }
}

/** Reads a layout's index.json and returns the descriptor of `ref`. */
export async function readLayoutRef(dir: string, ref: string): Promise<LayoutDescriptor | undefined> {
  const index = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8')) as {
    manifests: LayoutDescriptor[];
  };
  return index.manifests.find((entry) => entry.annotations?.['org.opencontainers.image.ref.name'] === ref);
}

export async function readLayoutBlob(dir: string, digest: string): Promise<Buffer> {
  return fs.readFile(path.join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)));
}
