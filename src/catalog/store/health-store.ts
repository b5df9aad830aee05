import { STATUS_CODES } from 'node:http';
import type { HealthRecord, HealthReport, HealthStatus } from '../model.js';
import { DuplicateIdError, type Collection, type DocumentDatabase } from './collection.js';

/**
 * Where health results live, beside the registry documents (the document schema does not
 * change): a typed repository on three generic collections (collection.ts), so both backends
 * share it. One contract suite (test/contract/health-store.contract.ts) runs on both.
 */

interface StatusDocument {
  readonly registry_id: string;
  readonly status: HealthStatus;
  readonly checked_at: string;
  /** The last check's latency (absent in documents written before it was kept here). */
  readonly latency_ms?: number | null;
}

interface HistoryDocument {
  readonly registry_id: string;
  /** Newest first, at most the configured history size. */
  readonly history: readonly HealthReport[];
}

interface ClaimDocument {
  /** `<registry id>:<slot>`: the unique id makes exactly one claimant win it. */
  readonly claim: string;
  readonly registry_id: string;
  readonly slot: number;
  readonly owner: string;
}

/** How often a read-modify-write of one record retries after losing a compare-and-swap race. */
const MAX_ATTEMPTS = 100;
const PAGE = 10_000;

export class HealthStore {
  private constructor(
    private readonly statuses: Collection<StatusDocument>,
    private readonly histories: Collection<HistoryDocument>,
    private readonly claims: Collection<ClaimDocument>,
  ) {}

  /** Opens the collections `<prefix>health_statuses`, `<prefix>health_histories` and `<prefix>probe_claims`. */
  static async open(database: DocumentDatabase, prefix: string): Promise<HealthStore> {
    return new HealthStore(
      await database.collection<StatusDocument>(`${prefix}health_statuses`, {
        idField: 'registry_id',
        indexes: [{ field: 'status', kind: 'column', column: 'status' }],
      }),
      await database.collection<HistoryDocument>(`${prefix}health_histories`, {
        idField: 'registry_id',
        indexes: [],
      }),
      await database.collection<ClaimDocument>(`${prefix}probe_claims`, {
        idField: 'claim',
        indexes: [{ field: 'slot', kind: 'column', column: 'slot' }],
      }),
    );
  }

  /** Stores `report` as the last result, prepends it to a history of at most `historySize`, and returns the previous status. */
  async record(
    registryId: string,
    report: HealthReport,
    historySize: number,
  ): Promise<HealthStatus | undefined> {
    await upsert(this.histories, registryId, (current) => ({
      registry_id: registryId,
      history: [report, ...(current?.history ?? [])].slice(0, historySize),
    }));
    const previous = await upsert(this.statuses, registryId, () => ({
      registry_id: registryId,
      status: report.status,
      checked_at: report.checked_at,
      latency_ms: report.latency_ms,
    }));
    return previous?.status;
  }

  async get(registryId: string): Promise<HealthRecord | undefined> {
    const stored = await this.histories.get(registryId);
    if (!stored || stored.document.history.length === 0) return undefined;
    const history = stored.document.history.map(withOriginalMeanings);
    return { registryId, last: history[0]!, history };
  }

  /**
   * Status and latency of the last check of each of `registryIds` that has one, by id: one read
   * of the small status documents (the resolver ranks every candidate's registry by them) rather
   * than a parse of each full history.
   */
  async lastChecks(
    registryIds: readonly string[],
  ): Promise<Map<string, { status: HealthStatus; latency_ms: number | null }>> {
    const found = new Map<string, { status: HealthStatus; latency_ms: number | null }>();
    for (const [id, { document }] of await this.statuses.getMany(registryIds)) {
      if (document.latency_ms !== undefined) {
        found.set(id, { status: document.status, latency_ms: document.latency_ms });
        continue;
      }
      const record = await this.get(id); // written before the status kept the latency
      if (record) found.set(id, { status: record.last.status, latency_ms: record.last.latency_ms });
    }
    return found;
  }

  /** Last status and check time of every registry with a record, by id. */
  async lastStatuses(): Promise<Map<string, { status: HealthStatus; checkedAt: string }>> {
    const all = new Map<string, { status: HealthStatus; checkedAt: string }>();
    for (let skip = 0; ; skip += PAGE) {
      const page = await this.statuses.find({}, { sort: [['registry_id', 1]], skip, limit: PAGE });
      for (const row of page) all.set(row.registry_id, { status: row.status, checkedAt: row.checked_at });
      if (page.length < PAGE) return all;
    }
  }

  async remove(registryId: string): Promise<void> {
    await this.statuses.delete(registryId);
    await this.histories.delete(registryId);
  }

  /**
   * Claims the probes of `registryIds` for time slot `slot` (a number that grows by one per
   * monitor interval) and returns the ids this caller won. Exactly one caller per (registry, slot)
   * wins, across every replica sharing the store: claims are inserts on a unique key, atomic on
   * MongoDB, FerretDB and SQLite.
   */
  async claim(registryIds: readonly string[], slot: number, owner: string): Promise<Set<string>> {
    const won = await this.claims.createMany(
      registryIds.map((id) => ({ claim: `${id}:${slot}`, registry_id: id, slot, owner })),
    );
    return new Set(registryIds.filter((id) => won.has(`${id}:${slot}`)));
  }

  /** Forgets claims of slots before `slot`. */
  async pruneClaims(beforeSlot: number): Promise<void> {
    await this.claims.deleteMany({ slot: { $lt: beforeSlot } });
  }
}

/** Writes `next(current)` under `id` with compare-and-swap, creating it when absent; returns what was there. */
async function upsert<T extends object>(
  collection: Collection<T>,
  id: string,
  next: (current: T | undefined) => T,
): Promise<T | undefined> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const current = await collection.get(id);
    if (!current) {
      try {
        await collection.create(next(undefined));
        return undefined;
      } catch (error) {
        if (error instanceof DuplicateIdError) continue;
        throw error;
      }
    }
    const result = await collection.replaceIfVersion(next(current.document), current.version);
    if (result.status === 'replaced') return current.document;
  }
  throw new Error(`health record ${id} is being written by too many writers at once`);
}

/**
 * Reports stored before `url`/`reason` got back the original AIOS meanings had the probed URL
 * in `url` and a sentence in `reason`, and no `probe_url`/`detail`: read them in today's shape.
 */
function withOriginalMeanings(report: HealthReport): HealthReport {
  if (typeof report.probe_url === 'string') return report;
  const { reachable, status_code, reason, url, ...rest } = report as Omit<
    HealthReport,
    'probe_url' | 'detail'
  >;
  return {
    reachable,
    status_code,
    reason: status_code === null ? null : (STATUS_CODES[status_code] ?? ''),
    url: url.replace(/v2\/$/, '').replace(/(.)\/$/, '$1'),
    probe_url: url,
    detail: reason ?? '',
    ...rest,
  };
}
