import { MongoBulkWriteError, type Collection, type Db } from 'mongodb';
import type { HealthReport, HealthStatus } from '../model.js';
import type { HealthStore } from './health-store.js';
import type { HealthRecord } from '../model.js';
import { ensureIndexes } from './mongo.js';

interface RecordShape {
  _id: string;
  status: HealthStatus;
  checked_at: string;
  history: HealthReport[];
}

interface ClaimShape {
  _id: string;
  slot: number;
  owner: string;
}

const DUPLICATE_KEY = 11000;

/**
 * Health records in `<collection>_health` and probe claims in `<collection>_health_claims`, in
 * the catalog's database. A claim is an insert with `_id = <registry>:<slot>`: the unique `_id`
 * makes exactly one replica win it.
 */
export class MongoHealthStore implements HealthStore {
  private readonly records: Collection<RecordShape>;
  private readonly claims: Collection<ClaimShape>;

  private constructor(db: Db, collection: string) {
    this.records = db.collection<RecordShape>(`${collection}_health`);
    this.claims = db.collection<ClaimShape>(`${collection}_health_claims`);
  }

  static async open(db: Db, collection = 'container_registry'): Promise<MongoHealthStore> {
    const store = new MongoHealthStore(db, collection);
    await ensureIndexes(store.records, [{ key: { status: 1 }, name: 'status' }]);
    await ensureIndexes(store.claims, [{ key: { slot: 1 }, name: 'slot' }]);
    return store;
  }

  async record(
    registryId: string,
    report: HealthReport,
    historySize: number,
  ): Promise<HealthStatus | undefined> {
    // One writer per registry per slot (claims), so read-then-replace does not race in practice.
    const current = await this.records.findOne({ _id: registryId });
    const history = [report, ...(current?.history ?? [])].slice(0, historySize);
    await this.records.replaceOne(
      { _id: registryId },
      { status: report.status, checked_at: report.checked_at, history },
      { upsert: true },
    );
    return current?.status;
  }

  async get(registryId: string): Promise<HealthRecord | undefined> {
    const record = await this.records.findOne({ _id: registryId });
    return record ? { registryId, last: record.history[0]!, history: record.history } : undefined;
  }

  async lastStatuses(): Promise<Map<string, { status: HealthStatus; checkedAt: string }>> {
    const rows = await this.records.find({}, { projection: { status: 1, checked_at: 1 } }).toArray();
    return new Map(rows.map((row) => [row._id, { status: row.status, checkedAt: row.checked_at }]));
  }

  async remove(registryId: string): Promise<void> {
    await this.records.deleteOne({ _id: registryId });
  }

  async claim(registryIds: readonly string[], slot: number, owner: string): Promise<Set<string>> {
    if (registryIds.length === 0) return new Set();
    const won = new Set(registryIds);
    try {
      await this.claims.insertMany(
        registryIds.map((id) => ({ _id: `${id}:${slot}`, slot, owner })),
        { ordered: false },
      );
    } catch (error) {
      // Unordered: every insert was tried; the duplicates are the claims another replica holds.
      if (!(error instanceof MongoBulkWriteError)) throw error;
      const failures = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
      for (const failure of failures) {
        if (failure.code !== DUPLICATE_KEY) throw error;
        won.delete(registryIds[failure.index]!);
      }
    }
    return won;
  }

  async pruneClaims(beforeSlot: number): Promise<void> {
    await this.claims.deleteMany({ slot: { $lt: beforeSlot } });
  }
}
