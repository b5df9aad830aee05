import type { StorageDriver } from '../storage/driver.js';
import { DIGEST_ALGORITHMS, parseDigest, type Digest } from './names.js';

/** A link file (`<dir>/<algorithm>/<hex>`) and when it was last written. */
export interface Link {
  readonly digest: Digest;
  readonly mtimeMs: number;
}

/**
 * Lists the link files under `dir` (a repository's revisions or layers), skipping anything that
 * is not a link of ours: an unknown algorithm, a directory, or a name that is not a digest.
 */
export async function listLinks(driver: StorageDriver, dir: string): Promise<Link[]> {
  const links: Link[] = [];
  for (const algorithm of await driver.list(dir)) {
    if (!Object.hasOwn(DIGEST_ALGORITHMS, algorithm)) continue;
    for (const hex of await driver.list(`${dir}/${algorithm}`)) {
      const stat = await driver.stat(`${dir}/${algorithm}/${hex}`);
      if (stat === undefined || stat.isDirectory) continue;
      try {
        links.push({ digest: parseDigest(`${algorithm}:${hex}`), mtimeMs: stat.mtimeMs });
      } catch {
        // not a link of ours: leave it alone
      }
    }
  }
  return links;
}
