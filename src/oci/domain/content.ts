/**
 * Manifests, tags, referrers and the repository catalog. A manifest's bytes are stored as a blob
 * (content-addressed); a repository holds a revision link naming its media type, tags naming a
 * digest, and one referrer descriptor per manifest whose `subject` points at another.
 */
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { OciError } from '../errors.js';
import type { StorageDriver } from '../storage/driver.js';
import {
  REPOSITORIES_DIR,
  REPOSITORY_META_DIRS,
  blobPath,
  referrerPath,
  referrersDir,
  repositoryPath,
  revisionLinkPath,
  tagPath,
  tagsDir,
} from '../storage/layout.js';
import type { Blobs } from './blobs.js';
import { MEDIA_TYPES, parseManifest, type Descriptor, type ParsedManifest } from './manifests.js';
import { parseDigest, type Digest, type Reference } from './names.js';

/** A manifest as served: bytes, media type and digest. */
export interface StoredManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly content: Buffer;
}

/** The result of a manifest PUT. */
export interface PutManifestResult {
  readonly digest: Digest;
  readonly subject: Digest | undefined;
}

/** A page of names (`tags/list`, `_catalog`) and whether more follow. */
export interface Page {
  readonly items: string[];
  readonly more: boolean;
}

/** The referrers API answer. */
export interface ReferrersIndex {
  readonly schemaVersion: 2;
  readonly mediaType: typeof MEDIA_TYPES.ociIndex;
  readonly manifests: Descriptor[];
}

/** Manifest bytes are immutable per digest, so a bounded in-memory copy is always correct. */
class ManifestCache {
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;
  constructor(private readonly maxBytes: number) {}
  get(digest: string): Buffer | undefined {
    return this.entries.get(digest);
  }
  set(digest: string, content: Buffer): void {
    if (content.length > this.maxBytes / 16 || this.entries.has(digest)) return;
    this.entries.set(digest, content);
    this.bytes += content.length;
    for (const [key, value] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(key);
      this.bytes -= value.length;
    }
  }
}

export function paginate(sorted: string[], n: number | undefined, last: string | undefined): Page {
  const start = last === undefined ? sorted : sorted.filter((item) => item > last);
  if (n === 0) return { items: [], more: false };
  if (n === undefined || start.length <= n) return { items: start, more: false };
  return { items: start.slice(0, n), more: true };
}

export class Content {
  private readonly cache = new ManifestCache(64 * 1024 * 1024);

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: Blobs,
  ) {}

  /**
   * Stores a manifest after validation: well-formed, known media type, every referenced blob
   * and child manifest present in this repository. Touches the links it references so a
   * concurrent `gc` keeps them (grace period).
   */
  async putManifest(
    name: string,
    reference: Reference,
    body: Buffer,
    contentType: string | undefined,
  ): Promise<PutManifestResult> {
    const algorithm = reference.kind === 'digest' ? reference.digest.algorithm : 'sha256';
    const hex = createHash(algorithm).update(body).digest('hex');
    const digest = parseDigest(`${algorithm}:${hex}`);
    if (reference.kind === 'digest' && reference.digest.hex !== hex) {
      throw new OciError('DigestInvalid', 'manifest digest does not match its content', {
        digest: reference.digest.value,
      });
    }
    const manifest = parseManifest(body, contentType);
    await this.checkReferences(name, manifest);

    await this.driver.writeFile(blobPath(digest), body);
    await this.driver.writeFile(revisionLinkPath(name, digest), manifest.mediaType);
    if (manifest.subject !== undefined) {
      const descriptor: Descriptor = {
        mediaType: manifest.mediaType,
        digest: digest.value,
        size: body.length,
        ...(manifest.artifactType === undefined ? {} : { artifactType: manifest.artifactType }),
        ...(manifest.annotations === undefined ? {} : { annotations: manifest.annotations }),
      };
      await this.driver.writeFile(referrerPath(name, manifest.subject, digest), JSON.stringify(descriptor));
    }
    if (reference.kind === 'tag') await this.driver.writeFile(tagPath(name, reference.tag), digest.value);
    this.cache.set(digest.value, body);
    return { digest, subject: manifest.subject };
  }

  /** Resolves a tag or digest in `name` to the stored manifest, or `MANIFEST_UNKNOWN`. */
  async getManifest(name: string, reference: Reference): Promise<StoredManifest> {
    const digest =
      reference.kind === 'digest' ? reference.digest : await this.resolveTag(name, reference.tag);
    const mediaType = (await this.driver.readFile(revisionLinkPath(name, digest)))?.toString('utf8');
    if (mediaType === undefined) throw new OciError('ManifestUnknown', undefined, { digest: digest.value });
    let content = this.cache.get(digest.value);
    if (content === undefined) {
      content = await this.driver.readFile(blobPath(digest));
      if (content === undefined) throw new OciError('ManifestUnknown', undefined, { digest: digest.value });
      this.cache.set(digest.value, content);
    }
    return { digest, mediaType, content };
  }

  /**
   * DELETE by digest removes the manifest from the repository with every tag pointing at it and
   * its referrer entry; DELETE by tag removes only the tag.
   */
  async deleteManifest(name: string, reference: Reference): Promise<void> {
    if (reference.kind === 'tag') {
      await this.resolveTag(name, reference.tag);
      await this.driver.delete(tagPath(name, reference.tag));
      return;
    }
    const { digest, content, mediaType } = await this.getManifest(name, reference);
    await this.driver.delete(revisionLinkPath(name, digest));
    for (const tag of await this.driver.list(tagsDir(name))) {
      const target = await this.driver.readFile(tagPath(name, tag));
      if (target?.toString('utf8') === digest.value) await this.driver.delete(tagPath(name, tag));
    }
    const subject = safeParse(content, mediaType)?.subject;
    if (subject !== undefined) {
      await this.driver.delete(referrerPath(name, subject, digest));
      await this.driver.pruneEmptyDirectories(referrersDir(name, subject), repositoryPath(name));
    }
  }

  async listTags(name: string, n: number | undefined, last: string | undefined): Promise<Page> {
    if ((await this.driver.stat(repositoryPath(name))) === undefined) {
      throw new OciError('NameUnknown', undefined, { name });
    }
    return paginate(await this.driver.list(tagsDir(name)), n, last);
  }

  /** Manifests in `name` whose subject is `subject`, optionally filtered by artifactType. */
  async referrers(name: string, subject: Digest, artifactType: string | undefined): Promise<ReferrersIndex> {
    const dir = referrersDir(name, subject);
    const manifests: Descriptor[] = [];
    for (const entry of await this.driver.list(dir)) {
      const raw = await this.driver.readFile(`${dir}/${entry}`);
      if (raw === undefined) continue;
      const descriptor = JSON.parse(raw.toString('utf8')) as Descriptor;
      // A crash between removing a revision and its referrer entry must not resurrect it.
      if ((await this.driver.stat(revisionLinkPath(name, parseDigest(descriptor.digest)))) === undefined)
        continue;
      if (artifactType !== undefined && descriptor.artifactType !== artifactType) continue;
      manifests.push(descriptor);
    }
    return { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests };
  }

  /** Repository names, lexically sorted. */
  async catalog(n: number | undefined, last: string | undefined): Promise<Page> {
    return paginate(await this.repositories(), n, last);
  }

  /** Every repository under the root (names with several components included). */
  async repositories(): Promise<string[]> {
    const found: string[] = [];
    const walk = async (relative: string, name: string): Promise<void> => {
      const entries = await this.driver.list(relative);
      if (name !== '' && entries.some((entry) => REPOSITORY_META_DIRS.has(entry))) found.push(name);
      for (const entry of entries) {
        if (entry.startsWith('_')) continue;
        await walk(`${relative}/${entry}`, name === '' ? entry : `${name}/${entry}`);
      }
    };
    await walk(REPOSITORIES_DIR, '');
    return found.sort();
  }

  private async resolveTag(name: string, tag: string): Promise<Digest> {
    const target = await this.driver.readFile(tagPath(name, tag));
    if (target === undefined) throw new OciError('ManifestUnknown', undefined, { tag });
    return parseDigest(target.toString('utf8'));
  }

  /**
   * Every referenced blob must be linked in this repository and every child manifest exist here.
   * Their mtimes are refreshed first, so a `gc` running concurrently sees them as young and keeps
   * them (it re-reads mtimes right before deleting); refreshing never creates a file.
   */
  /**
   * Every referenced blob and child manifest must be present. Each distinct digest is checked
   * once, at most `REFERENCE_CHECKS_AT_ONCE` at a time: a manifest naming one blob thousands of
   * times costs one check, and one request cannot take every file descriptor from the others.
   */
  private async checkReferences(name: string, manifest: ParsedManifest): Promise<void> {
    const missing: string[] = [];
    const limit = pLimit(REFERENCE_CHECKS_AT_ONCE);
    const distinct = (digests: readonly Digest[]) => [
      ...new Map(digests.map((digest) => [digest.value, digest])).values(),
    ];
    await Promise.all([
      ...distinct(manifest.blobs).map((digest) =>
        limit(async () => {
          const present =
            (await this.blobs.isLinked(name, digest)) && (await this.driver.refresh(blobPath(digest)));
          if (present) await this.blobs.link(name, digest);
          else missing.push(digest.value);
        }),
      ),
      ...distinct(manifest.manifests).map((digest) =>
        limit(async () => {
          const present =
            (await this.driver.refresh(blobPath(digest))) &&
            (await this.driver.refresh(revisionLinkPath(name, digest)));
          if (!present) missing.push(digest.value);
        }),
      ),
    ]);
    if (missing.length > 0) {
      throw new OciError('ManifestBlobUnknown', undefined, { digests: missing.sort() });
    }
  }
}

/** Storage operations one manifest PUT runs at once to check its references. */
const REFERENCE_CHECKS_AT_ONCE = 8;

function safeParse(content: Buffer, mediaType: string): ParsedManifest | undefined {
  try {
    return parseManifest(content, mediaType);
  } catch {
    return undefined;
  }
}
