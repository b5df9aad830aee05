import type Database from 'better-sqlite3';
import type { HealthReport, HealthStatus } from '../model.js';
import type { HealthStore } from './health-store.js';
import type { HealthRecord } from '../model.js';

/** Health records in the embedded store's SQLite file (tables created here, idempotently). */
export class EmbeddedHealthStore implements HealthStore {
  private readonly statements;

  constructor(db: Database.Database) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS health_records (
        registry_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        checked_at TEXT NOT NULL,
        history TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS health_records_status ON health_records (status);
      CREATE TABLE IF NOT EXISTS health_claims (
        registry_id TEXT NOT NULL,
        slot INTEGER NOT NULL,
        owner TEXT NOT NULL,
        PRIMARY KEY (registry_id, slot)
      ) WITHOUT ROWID;`);
    this.statements = {
      get: db.prepare<[string], { history: string }>(
        'SELECT history FROM health_records WHERE registry_id = ?',
      ),
      upsert: db.prepare(
        `INSERT INTO health_records (registry_id, status, checked_at, history) VALUES (?, ?, ?, ?)
         ON CONFLICT (registry_id) DO UPDATE SET status = excluded.status, checked_at = excluded.checked_at, history = excluded.history`,
      ),
      statuses: db.prepare<[], { registry_id: string; status: HealthStatus; checked_at: string }>(
        'SELECT registry_id, status, checked_at FROM health_records',
      ),
      remove: db.prepare('DELETE FROM health_records WHERE registry_id = ?'),
      claim: db.prepare('INSERT OR IGNORE INTO health_claims (registry_id, slot, owner) VALUES (?, ?, ?)'),
      prune: db.prepare('DELETE FROM health_claims WHERE slot < ?'),
    };
    this.recordInTransaction = db.transaction(
      (registryId: string, report: HealthReport, historySize: number) => {
        const row = this.statements.get.get(registryId);
        const previous = row ? (JSON.parse(row.history) as HealthReport[]) : [];
        const history = [report, ...previous].slice(0, historySize);
        this.statements.upsert.run(registryId, report.status, report.checked_at, JSON.stringify(history));
        return previous[0]?.status;
      },
    );
    this.claimInTransaction = db.transaction(
      (registryIds: readonly string[], slot: number, owner: string) => {
        const won = new Set<string>();
        for (const id of registryIds)
          if (this.statements.claim.run(id, slot, owner).changes === 1) won.add(id);
        return won;
      },
    );
  }

  private readonly claimInTransaction: (
    registryIds: readonly string[],
    slot: number,
    owner: string,
  ) => Set<string>;
  private readonly recordInTransaction: (
    registryId: string,
    report: HealthReport,
    historySize: number,
  ) => HealthStatus | undefined;

  async record(
    registryId: string,
    report: HealthReport,
    historySize: number,
  ): Promise<HealthStatus | undefined> {
    return this.recordInTransaction(registryId, report, historySize);
  }

  async get(registryId: string): Promise<HealthRecord | undefined> {
    const row = this.statements.get.get(registryId);
    if (!row) return undefined;
    const history = JSON.parse(row.history) as HealthReport[];
    return { registryId, last: history[0]!, history };
  }

  async lastStatuses(): Promise<Map<string, { status: HealthStatus; checkedAt: string }>> {
    return new Map(
      this.statements.statuses
        .all()
        .map((row) => [row.registry_id, { status: row.status, checkedAt: row.checked_at }]),
    );
  }

  async remove(registryId: string): Promise<void> {
    this.statements.remove.run(registryId);
  }

  async claim(registryIds: readonly string[], slot: number, owner: string): Promise<Set<string>> {
    return this.claimInTransaction(registryIds, slot, owner);
  }

  async pruneClaims(beforeSlot: number): Promise<void> {
    this.statements.prune.run(beforeSlot);
  }
}
