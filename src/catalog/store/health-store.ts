import type { HealthRecord, HealthReport, HealthStatus } from '../model.js';

/**
 * Where health results live, beside the registry documents (the document schema does not
 * change). Implemented on the embedded store's SQLite file and in a MongoDB collection; one
 * contract suite (test/contract/health-store.contract.ts) runs against both.
 */

export interface HealthStore {
  /** Stores `report` as the last result, prepends it to a history of at most `historySize`, and returns the previous status. */
  record(registryId: string, report: HealthReport, historySize: number): Promise<HealthStatus | undefined>;
  get(registryId: string): Promise<HealthRecord | undefined>;
  /** Last status and check time of every registry with a record, by id. */
  lastStatuses(): Promise<Map<string, { status: HealthStatus; checkedAt: string }>>;
  remove(registryId: string): Promise<void>;
  /**
   * Claims the probes of `registryIds` for time slot `slot` (a number that grows by one per
   * monitor interval) and returns the ids this caller won. Exactly one caller per (registry, slot)
   * wins, across every replica sharing the store: claims are inserts on a unique key, atomic on
   * MongoDB, FerretDB and SQLite.
   */
  claim(registryIds: readonly string[], slot: number, owner: string): Promise<Set<string>>;
  /** Forgets claims of slots before `slot`. */
  pruneClaims(beforeSlot: number): Promise<void>;
}
