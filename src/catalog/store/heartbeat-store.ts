import type { HeartbeatInstance, HeartbeatRecord } from '../model.js';
import { DuplicateIdError, type Collection, type DocumentDatabase } from './collection.js';

/**
 * Self-registration state of registries that register themselves (DESIGN.md section 12): who
 * registered the entry (the token's name), the last heartbeat of each instance, and whether the
 * stale transition was already announced. Beside the registry documents, like health records,
 * so the entry's schema does not change. A typed repository on one generic collection.
 */

/** How often a read-modify-write retries after losing a compare-and-swap race. */
const MAX_ATTEMPTS = 100;
const PAGE = 1_000;

export class HeartbeatStore {
  private constructor(private readonly records: Collection<HeartbeatRecord>) {}

  /** Opens `<prefix>registry_heartbeats`. */
  static async open(database: DocumentDatabase, prefix: string): Promise<HeartbeatStore> {
    return new HeartbeatStore(
      await database.collection<HeartbeatRecord>(`${prefix}registry_heartbeats`, {
        idField: 'registry_id',
        indexes: [],
      }),
    );
  }

  async get(registryId: string): Promise<HeartbeatRecord | undefined> {
    return (await this.records.get(registryId))?.document;
  }

  /**
   * Writes `next(current)` with compare-and-swap (creating the record when absent) and returns
   * what was there before and what was written; `next` returning `undefined` writes nothing.
   */
  async update(
    registryId: string,
    next: (current: HeartbeatRecord | undefined) => HeartbeatRecord | undefined,
  ): Promise<{ before: HeartbeatRecord | undefined; after: HeartbeatRecord | undefined }> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.records.get(registryId);
      const written = next(current?.document);
      if (written === undefined) return { before: current?.document, after: current?.document };
      if (!current) {
        try {
          await this.records.create(written);
          return { before: undefined, after: written };
        } catch (error) {
          if (error instanceof DuplicateIdError) continue;
          throw error;
        }
      }
      const result = await this.records.replaceIfVersion(written, current.version);
      if (result.status === 'replaced') return { before: current.document, after: written };
    }
    throw new Error(`heartbeat record ${registryId} is being written by too many writers at once`);
  }

  /** Every record, a page at a time (the stale watch walks them). */
  async *all(): AsyncIterable<HeartbeatRecord> {
    for (let skip = 0; ; skip += PAGE) {
      const page = await this.records.find({}, { sort: [['registry_id', 1]], skip, limit: PAGE });
      yield* page;
      if (page.length < PAGE) return;
    }
  }

  async remove(registryId: string): Promise<void> {
    await this.records.delete(registryId);
  }
}

export type { HeartbeatInstance, HeartbeatRecord };
