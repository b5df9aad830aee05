/**
 * Blobs as a repository sees them: a blob is readable in a repository only when the repository
 * has a link to it (it was pushed or mounted there), even if another repository holds the bytes.
 */
import { OciError } from '../errors.js';
import type { ReadableFile, StorageDriver } from '../storage/driver.js';
import { blobPath, layerLinkPath } from '../storage/layout.js';
import type { Digest } from './names.js';

export class Blobs {
  constructor(private readonly driver: StorageDriver) {}

  /** Size of a blob readable in `name`, or `BLOB_UNKNOWN`. */
  async size(name: string, digest: Digest): Promise<number> {
    const [link, blob] = await Promise.all([
      this.driver.stat(layerLinkPath(name, digest)),
      this.driver.stat(blobPath(digest)),
    ]);
    if (link === undefined || blob === undefined)
      throw new OciError('BlobUnknown', undefined, { digest: digest.value });
    return blob.size;
  }

  /** Whether `name` links the blob (no check of the bytes: used by manifest validation). */
  async isLinked(name: string, digest: Digest): Promise<boolean> {
    return (await this.driver.stat(layerLinkPath(name, digest))) !== undefined;
  }

  /** Opens a blob readable in `name` for positional reads, or `BLOB_UNKNOWN`. */
  async open(name: string, digest: Digest): Promise<ReadableFile> {
    const [link, file] = await Promise.all([
      this.driver.stat(layerLinkPath(name, digest)),
      this.driver.openRead(blobPath(digest)),
    ]);
    if (link === undefined || file === undefined) {
      await file?.close();
      throw new OciError('BlobUnknown', undefined, { digest: digest.value });
    }
    return file;
  }

  /** Links a stored blob into `name`; also refreshes the link's mtime (gc grace period). */
  async link(name: string, digest: Digest): Promise<void> {
    await this.driver.touch(layerLinkPath(name, digest));
  }

  /**
   * Cross-repository mount: links the blob into `name` when `from` links it. Returns false when
   * it cannot (the caller then starts a normal upload, as the spec says).
   */
  async mount(name: string, from: string, digest: Digest): Promise<boolean> {
    const [source, blob] = await Promise.all([
      this.driver.stat(layerLinkPath(from, digest)),
      this.driver.stat(blobPath(digest)),
    ]);
    if (source === undefined || blob === undefined) return false;
    await this.link(name, digest);
    return true;
  }

  /** Removes the blob from `name` only; the bytes go when `gc` finds nothing linking them. */
  async unlink(name: string, digest: Digest): Promise<void> {
    if (!(await this.isLinked(name, digest)))
      throw new OciError('BlobUnknown', undefined, { digest: digest.value });
    await this.driver.delete(layerLinkPath(name, digest));
  }
}
