/**
 * Robot accounts (DESIGN 9): created, listed, rotated and deleted by the CLI; used by CI with
 * `docker login` semantics (`robot_NAME` + secret). Names never contain `$` (unlike Harbor's
 * `robot$...`, which needs escaping in every shell and CI file). The secret is shown once and
 * only its SHA-256 is stored: it is 256 random bits, so a slow hash would add nothing.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { StorageDriver } from '../storage/driver.js';
import { ROBOTS_LAST_USED_PATH, ROBOTS_PATH } from './auth-layout.js';
import type { Principal } from './policy.js';
import { ACTIONS, type Action } from './scopes.js';

/** The account name prefix: `robot_` + NAME is what clients log in with. */
export const ROBOT_PREFIX = 'robot_';
const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const PREFIX = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*\/?$/;

/** One stored robot (no secret, only its hash). */
export interface RobotRecord {
  readonly name: string;
  readonly prefix: string;
  readonly actions: readonly Action[];
  readonly secretSha256: string;
  readonly createdAt: string;
  readonly expiresAt: string | undefined;
}

/** A robot as `robot list` shows it. */
export interface RobotView extends Omit<RobotRecord, 'secretSha256'> {
  readonly account: string;
  readonly lastUsedAt: string | undefined;
}

/** A refused CLI request (unknown robot, bad name, ...): one line for the user. */
export class RobotError extends Error {
  override name = 'RobotError';
}

/** The result of checking a robot's credentials. */
export type RobotCheck =
  { ok: true; principal: Principal } | { ok: false; reason: 'unknown' | 'expired' | 'secret' };

const hashSecret = (secret: string) => createHash('sha256').update(secret).digest('hex');
/** Base64url: letters, digits, `-` and `_`, safe unquoted in shells, YAML and CI variables. */
const newSecret = () => randomBytes(32).toString('base64url');
/** How often the server re-reads robots.json (the CLI changes it) and writes last-used times. */
const RELOAD_MS = 1000;
const LAST_USED_FLUSH_MS = 30_000;

export class RobotStore {
  private records: RobotRecord[] = [];
  private mtimeMs = -1;
  private checkedAt = -Infinity;
  private readonly lastUsed = new Map<string, string>();
  private lastUsedDirty = false;
  private flushedAt = 0;

  constructor(
    private readonly driver: StorageDriver,
    private readonly now: () => number = Date.now,
  ) {}

  async list(): Promise<RobotView[]> {
    const [records, lastUsed] = await Promise.all([this.read(), this.readLastUsed()]);
    return records.map(({ secretSha256: _hash, ...record }) => ({
      ...record,
      account: `${ROBOT_PREFIX}${record.name}`,
      lastUsedAt: lastUsed[record.name],
    }));
  }

  /** Creates a robot; returns its account name and the secret (never stored). */
  async create(options: {
    name: string;
    prefix: string;
    actions: readonly string[];
    expiresDays?: number;
  }): Promise<{ account: string; secret: string; record: RobotRecord }> {
    const name = options.name.startsWith(ROBOT_PREFIX)
      ? options.name.slice(ROBOT_PREFIX.length)
      : options.name;
    if (!NAME.test(name))
      throw new RobotError(
        `robot name must be 1-63 of a-z 0-9 . _ - (starting with a letter or digit): ${name}`,
      );
    if (!PREFIX.test(options.prefix)) throw new RobotError(`not a repository name prefix: ${options.prefix}`);
    const unknown = options.actions.filter((action) => !(ACTIONS as readonly string[]).includes(action));
    if (options.actions.length === 0 || unknown.length > 0)
      throw new RobotError(`actions must be some of ${ACTIONS.join(', ')}; got ${options.actions.join(',')}`);
    if (
      options.expiresDays !== undefined &&
      !(Number.isInteger(options.expiresDays) && options.expiresDays > 0)
    )
      throw new RobotError('--expires-days must be a positive whole number');
    const records = await this.read();
    if (records.some((record) => record.name === name)) throw new RobotError(`robot ${name} already exists`);
    const secret = newSecret();
    const record: RobotRecord = {
      name,
      prefix: options.prefix,
      actions: [...new Set(options.actions as Action[])],
      secretSha256: hashSecret(secret),
      createdAt: new Date(this.now()).toISOString(),
      expiresAt:
        options.expiresDays === undefined
          ? undefined
          : new Date(this.now() + options.expiresDays * 86_400_000).toISOString(),
    };
    await this.write([...records, record]);
    return { account: `${ROBOT_PREFIX}${name}`, secret, record };
  }

  /** Replaces a robot's secret; the old one stops working at once. */
  async rotate(name: string): Promise<{ account: string; secret: string }> {
    const records = await this.read();
    const bare = stripPrefix(name);
    const index = records.findIndex((record) => record.name === bare);
    if (index < 0) throw new RobotError(`no robot ${bare}`);
    const secret = newSecret();
    const updated = [...records];
    updated[index] = { ...records[index]!, secretSha256: hashSecret(secret) };
    await this.write(updated);
    return { account: `${ROBOT_PREFIX}${bare}`, secret };
  }

  async delete(name: string): Promise<void> {
    const records = await this.read();
    const bare = stripPrefix(name);
    if (!records.some((record) => record.name === bare)) throw new RobotError(`no robot ${bare}`);
    await this.write(records.filter((record) => record.name !== bare));
  }

  /** Checks `robot_NAME` + secret (server side); records the use. */
  async authenticate(account: string, secret: string): Promise<RobotCheck> {
    await this.refresh();
    const record = this.records.find((item) => `${ROBOT_PREFIX}${item.name}` === account);
    if (record === undefined) return { ok: false, reason: 'unknown' };
    const expected = Buffer.from(record.secretSha256, 'hex');
    const actual = createHash('sha256').update(secret).digest();
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual))
      return { ok: false, reason: 'secret' };
    if (record.expiresAt !== undefined && Date.parse(record.expiresAt) <= this.now())
      return { ok: false, reason: 'expired' };
    this.lastUsed.set(record.name, new Date(this.now()).toISOString());
    this.lastUsedDirty = true;
    if (this.now() - this.flushedAt >= LAST_USED_FLUSH_MS) await this.flushLastUsed();
    return {
      ok: true,
      principal: { name: account, robot: { prefix: record.prefix, actions: record.actions } },
    };
  }

  /** A robot's grant as of now, for a token subject (`undefined` when deleted or expired). */
  async principal(account: string): Promise<Principal | undefined> {
    await this.refresh();
    const record = this.records.find((item) => `${ROBOT_PREFIX}${item.name}` === account);
    if (record === undefined) return undefined;
    if (record.expiresAt !== undefined && Date.parse(record.expiresAt) <= this.now()) return undefined;
    return { name: account, robot: { prefix: record.prefix, actions: record.actions } };
  }

  /** Writes pending last-used times (also called on shutdown). */
  async flushLastUsed(): Promise<void> {
    if (!this.lastUsedDirty) return;
    this.lastUsedDirty = false;
    this.flushedAt = this.now();
    const stored = await this.readLastUsed();
    await this.driver.writeFile(
      ROBOTS_LAST_USED_PATH,
      JSON.stringify({ ...stored, ...Object.fromEntries(this.lastUsed) }, null, 2),
    );
  }

  private async refresh(): Promise<void> {
    if (this.now() - this.checkedAt < RELOAD_MS) return;
    this.checkedAt = this.now();
    const stat = await this.driver.stat(ROBOTS_PATH);
    const mtimeMs = stat?.mtimeMs ?? 0;
    if (mtimeMs === this.mtimeMs) return;
    this.records = await this.read();
    this.mtimeMs = mtimeMs;
  }

  private async read(): Promise<RobotRecord[]> {
    const raw = await this.driver.readFile(ROBOTS_PATH);
    if (raw === undefined) return [];
    return (JSON.parse(raw.toString('utf8')) as { robots: RobotRecord[] }).robots;
  }

  private async readLastUsed(): Promise<Record<string, string>> {
    const raw = await this.driver.readFile(ROBOTS_LAST_USED_PATH);
    if (raw === undefined) return {};
    try {
      return JSON.parse(raw.toString('utf8')) as Record<string, string>;
    } catch {
      return {};
    }
  }

  private async write(records: RobotRecord[]): Promise<void> {
    await this.driver.writeFile(ROBOTS_PATH, `${JSON.stringify({ robots: records }, null, 2)}\n`);
    this.checkedAt = -Infinity;
  }
}

function stripPrefix(name: string): string {
  return name.startsWith(ROBOT_PREFIX) ? name.slice(ROBOT_PREFIX.length) : name;
}
