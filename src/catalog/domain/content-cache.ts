import type { VersionedText } from '../store/collection.js';

interface Entry<V> {
  readonly text: string;
  readonly version: number;
  readonly value: V;
  readonly size: number;
}

/** Bounds of a `ContentCache`, in UTF-16 code units of text (about bytes for JSON). */
export interface ContentCacheLimits {
  /** All entries together. */
  readonly totalChars: number;
  /** Larger documents are not cached (they are rare, and would evict many small ones). */
  readonly entryChars: number;
}

/**
 * What was derived from a stored document (the fast read's serialised answer and entity tag),
 * kept per id under the document's exact JSON text and version. A hit needs both to equal what
 * the store holds now, so it never serves a stale answer whoever wrote in between (another
 * replica, a delete and re-create): the store is still read on every request; only the parse,
 * the masking, the hash and the serialisation are saved. Bounded by size; the oldest goes first.
 */
export class ContentCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private chars = 0;

  constructor(private readonly limits: ContentCacheLimits) {}

  /** The value derived from exactly this stored text and version, if cached. */
  get(id: string, stored: VersionedText): V | undefined {
    const entry = this.entries.get(id);
    return entry && entry.version === stored.version && entry.text === stored.text ? entry.value : undefined;
  }

  /** Caches `value`, derived from `stored` and taking about `valueChars`; returns it. */
  set(id: string, stored: VersionedText, value: V, valueChars: number): V {
    this.drop(id);
    const size = stored.text.length + valueChars;
    if (size > this.limits.entryChars) return value;
    while (this.chars + size > this.limits.totalChars && this.entries.size > 0) {
      this.drop(this.entries.keys().next().value!);
    }
    this.entries.set(id, { text: stored.text, version: stored.version, value, size });
    this.chars += size;
    return value;
  }

  private drop(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.chars -= entry.size;
  }
}
