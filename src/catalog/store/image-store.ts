import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { ContainerImage, CrawlReport, Filter } from '../model.js';
import type { Collection, DocumentDatabase, FindOptions } from './collection.js';

/**
 * The image index (DESIGN.md section 8): image records, the last crawl report of each registry,
 * and the crawler's slot claims, as typed repositories on generic collections (collection.ts),
 * so both backends share them. Lookups by repository, tag, digest and registry use the declared
 * indexes, never a scan.
 */

/**
 * A stored image record: the record plus its id (`<registry>|<repository>|<tag or @digest>`),
 * its platforms as `os/arch` and `os/arch/variant` keys (indexed; `$elemMatch` on field
 * conditions is not available on FerretDB), every digest it answers to (its own and, for an
 * index, its children's: indexed, so a platform-specific digest finds the index holding it), and
 * when its referrers were last read. None is part of the record clients see.
 */
type StoredImage = SeenImage & {
  readonly image_id: string;
  readonly platform_keys: string[];
  readonly digest_keys: string[];
};

/** A record as a crawl saw it: with when its referrers were read from the registry (ISO 8601). */
export type SeenImage = ContainerImage & { readonly referrers_read_at?: string };

/** A tagged record as the crawler takes it (`KnownTag` of health/crawl.ts, which the store does not import). */
export type KnownImage = Pick<
  SeenImage,
  'digest' | 'media_type' | 'platforms' | 'size' | 'referrers' | 'referrers_read_at'
>;

/** The stored field a platform filter uses: `{[PLATFORM_KEYS]: "linux/arm64"}` (see `platformKey`). */
export const PLATFORM_KEYS = 'platform_keys';

/**
 * The stored field a digest lookup uses: `{[DIGEST_KEYS]: digest}` matches the record of that
 * digest and every index listing it as a child. Records written before the field existed gain it
 * at their next write (every crawl rewrites what it saw).
 */
export const DIGEST_KEYS = 'digest_keys';

/** `os/architecture[/variant]`, as `GET /resolve_image?platform=` takes it. */
export function platformKey(platform: { os: string; architecture: string; variant?: string }): string {
  return [platform.os, platform.architecture, ...(platform.variant ? [platform.variant] : [])].join('/');
}

interface ClaimDocument {
  readonly claim: string;
  readonly registry_id: string;
  readonly slot: number;
  readonly owner: string;
}

/** What writing the records of one crawl changed. */
export interface SeenCounts {
  added: number;
  updated: number;
}

const PAGE = 1_000;

/** The id of a record: one per (registry, repository, tag), or per untagged digest. */
export function imageId(
  image: Pick<ContainerImage, 'container_registry_id' | 'repository' | 'tag' | 'digest'>,
): string {
  return `${image.container_registry_id}|${image.repository}|${image.tag ?? `@${image.digest}`}`;
}

export class ImageStore {
  private constructor(
    private readonly images: Collection<StoredImage>,
    private readonly reports: Collection<CrawlReport>,
    private readonly claims: Collection<ClaimDocument>,
  ) {}

  /** Opens `<prefix>container_images`, `<prefix>crawl_reports` and `<prefix>crawl_claims`. */
  static async open(database: DocumentDatabase, prefix: string): Promise<ImageStore> {
    return new ImageStore(
      await database.collection<StoredImage>(`${prefix}container_images`, {
        idField: 'image_id',
        indexes: [
          { field: 'container_registry_id', kind: 'column', column: 'registry_id' },
          { field: 'repository', kind: 'column', column: 'repository' },
          { field: 'tag', kind: 'column', column: 'tag' },
          { field: 'digest', kind: 'column', column: 'digest' },
          {
            field: PLATFORM_KEYS,
            kind: 'multi',
            column: 'platform',
            table: `${prefix}container_image_platforms`,
          },
          {
            field: DIGEST_KEYS,
            kind: 'multi',
            column: 'digest',
            table: `${prefix}container_image_digests`,
          },
        ],
        // Resolve by reference (DESIGN 8).
        compoundIndexes: [['repository', 'tag']],
      }),
      await database.collection<CrawlReport>(`${prefix}crawl_reports`, {
        idField: 'container_registry_id',
        indexes: [],
      }),
      await database.collection<ClaimDocument>(`${prefix}crawl_claims`, {
        idField: 'claim',
        indexes: [
          { field: 'registry_id', kind: 'column', column: 'registry_id' },
          { field: 'slot', kind: 'column', column: 'slot' },
        ],
      }),
    );
  }

  async find(filter: Filter, options: FindOptions): Promise<ContainerImage[]> {
    return (await this.images.find(filter, options)).map(toRecord);
  }

  /** A page and the number of all matches (`Collection.findPage`: one pass on FerretDB). */
  async findPage(filter: Filter, options: FindOptions): Promise<{ items: ContainerImage[]; total: number }> {
    const { items, total } = await this.images.findPage(filter, options);
    return { items: items.map(toRecord), total };
  }

  async count(filter: Filter): Promise<number> {
    return this.images.count(filter);
  }

  /**
   * Writes the records one crawl saw: new ones are added, changed ones updated (keeping
   * `first_seen`), unchanged ones only get a fresh `last_seen`. In batches of PAGE (one read,
   * one insert and one replace batch each: a recrawl of 10,000 unchanged tags was 10,000 writes,
   * each synced to disk); a record another writer touched meanwhile is retried alone.
   */
  async writeSeen(records: readonly SeenImage[], added?: SeenImage[]): Promise<SeenCounts> {
    const counts: SeenCounts = { added: 0, updated: 0 };
    for (let start = 0; start < records.length; start += PAGE) {
      const batch = records.slice(start, start + PAGE);
      const stored = batch.map(toStored);
      const current = await this.images.getMany(stored.map((image) => image.image_id));
      const next = stored.map((image) => {
        const before = current.get(image.image_id);
        return before ? { ...image, first_seen: before.document.first_seen } : image;
      });
      const created = await this.images.createMany(next.filter((image) => !current.has(image.image_id)));
      const replaced = await this.images.replaceManyIfVersion(
        next.flatMap((image) => {
          const before = current.get(image.image_id);
          return before ? [{ document: image, version: before.version }] : [];
        }),
      );
      const raced: SeenImage[] = [];
      batch.forEach((record, i) => {
        const id = next[i]!.image_id;
        const before = current.get(id);
        if (!before && created.has(id)) {
          counts.added++;
          added?.push(record);
        } else if (before && replaced.has(id)) {
          if (changed(before.document, next[i]!)) counts.updated++;
        } else raced.push(record);
      });
      const retried = await this.writeOneByOne(raced, added);
      counts.added += retried.added;
      counts.updated += retried.updated;
    }
    return counts;
  }

  /** `writeSeen` one record at a time, re-reading on each conflict (records raced by another writer). */
  private async writeOneByOne(records: readonly SeenImage[], added?: SeenImage[]): Promise<SeenCounts> {
    const counts: SeenCounts = { added: 0, updated: 0 };
    for (const record of records) {
      const stored = toStored(record);
      const id = stored.image_id;
      for (let attempt = 0; attempt < 20; attempt++) {
        const current = await this.images.get(id);
        if (!current) {
          const created = await this.images.createMany([stored]);
          if (created.has(id)) {
            counts.added++;
            added?.push(record);
            break;
          }
          continue;
        }
        const next = { ...stored, first_seen: current.document.first_seen };
        const result = await this.images.replaceIfVersion(next, current.version);
        if (result.status === 'conflict') continue;
        if (changed(current.document, next)) counts.updated++;
        break;
      }
    }
    return counts;
  }

  /** Inserts records not stored yet, in batches (bulk loads: benchmarks, imports); returns how many. */
  async insertMany(records: readonly SeenImage[]): Promise<number> {
    let inserted = 0;
    for (let start = 0; start < records.length; start += PAGE) {
      inserted += (await this.images.createMany(records.slice(start, start + PAGE).map(toStored))).size;
      // The embedded store answers without I/O waits, so a loop of batches would never leave the
      // microtask queue: requests would wait for the whole load, and so would the WAL checkpoint
      // the store schedules after writes (a 1M load grew an 11 GB WAL). Batches of 1,000: one
      // transaction holds the event loop for tens of milliseconds, not hundreds.
      await yieldToEventLoop();
    }
    return inserted;
  }

  /** The tagged records of one repository of a registry, by tag, as the crawler takes them (crawl.ts). */
  async knownTags(registryId: string, repository: string): Promise<Map<string, KnownImage>> {
    const known = new Map<string, KnownImage>();
    for (let skip = 0; ; skip += PAGE) {
      const page = await this.images.find(
        { container_registry_id: registryId, repository },
        { sort: [], skip, limit: PAGE },
      );
      for (const image of page)
        if (image.tag !== null)
          known.set(image.tag, {
            digest: image.digest,
            media_type: image.media_type,
            platforms: image.platforms,
            size: image.size,
            referrers: image.referrers,
            ...(image.referrers_read_at ? { referrers_read_at: image.referrers_read_at } : {}),
          });
      if (page.length < PAGE) break;
    }
    return known;
  }

  /** Removes the records of `registryId` from crawls whose ids are not in `seen`; returns how many. */
  async removeUnseen(
    registryId: string,
    seen: ReadonlySet<string>,
    removed?: ContainerImage[],
  ): Promise<number> {
    const stale: string[] = [];
    for (let skip = 0; ; skip += PAGE) {
      const page = await this.images.find(
        { container_registry_id: registryId, source: 'crawl' },
        { sort: [], skip, limit: PAGE },
      );
      for (const image of page) {
        if (seen.has(image.image_id)) continue;
        stale.push(image.image_id);
        removed?.push(toRecord(image));
      }
      if (page.length < PAGE) break;
    }
    for (const id of stale) await this.images.delete(id);
    return stale.length;
  }

  /**
   * A delete event of a self-registered registry: removes the records of `repository` with that
   * digest (a manifest delete, its tags included) or that tag; returns how many went.
   */
  async removeByEvent(
    registryId: string,
    repository: string,
    target: { readonly digest?: string; readonly tag?: string },
  ): Promise<number> {
    const filter = { container_registry_id: registryId, repository, ...target };
    const count = await this.images.count(filter);
    if (count > 0) await this.images.deleteMany(filter);
    return count;
  }

  /** Drops every record and the crawl report of a deleted registry. */
  async forget(registryId: string): Promise<void> {
    await this.images.deleteMany({ container_registry_id: registryId });
    await this.reports.delete(registryId);
  }

  async saveReport(report: CrawlReport): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const current = await this.reports.get(report.container_registry_id);
      if (!current) {
        if ((await this.reports.createMany([report])).size === 1) return;
        continue;
      }
      const result = await this.reports.replaceIfVersion(report, current.version);
      if (result.status !== 'conflict') return;
    }
  }

  async report(registryId: string): Promise<CrawlReport | undefined> {
    return (await this.reports.get(registryId))?.document;
  }

  /** Claims the crawls of `registryIds` for their slot; exactly one caller per (registry, slot) wins. */
  async claim(claims: ReadonlyArray<{ id: string; slot: number }>, owner: string): Promise<Set<string>> {
    const won = await this.claims.createMany(
      claims.map(({ id, slot }) => ({ claim: `${id}:${slot}`, registry_id: id, slot, owner })),
    );
    return new Set(claims.filter(({ id, slot }) => won.has(`${id}:${slot}`)).map(({ id }) => id));
  }

  /** Forgets the claims of `registryId` for slots before `beforeSlot`. */
  async pruneClaims(registryId: string, beforeSlot: number): Promise<void> {
    await this.claims.deleteMany({ registry_id: registryId, slot: { $lt: beforeSlot } });
  }
}

function toStored(record: SeenImage): StoredImage {
  const platformKeys = record.platforms.flatMap((platform) => [
    `${platform.os}/${platform.architecture}`,
    ...(platform.variant ? [platformKey(platform)] : []),
  ]);
  return {
    image_id: imageId(record),
    ...record,
    platform_keys: [...new Set(platformKeys)],
    digest_keys: [...new Set([record.digest, ...record.platforms.map((platform) => platform.digest)])],
  };
}

function toRecord({
  image_id: _id,
  platform_keys: _keys,
  digest_keys: _digests,
  referrers_read_at: _read,
  ...record
}: StoredImage): ContainerImage {
  return record;
}

function changed(before: ContainerImage, after: ContainerImage): boolean {
  return (
    before.digest !== after.digest ||
    before.media_type !== after.media_type ||
    before.size !== after.size ||
    before.pull_reference !== after.pull_reference ||
    JSON.stringify(before.platforms) !== JSON.stringify(after.platforms) ||
    JSON.stringify(before.referrers) !== JSON.stringify(after.referrers)
  );
}
