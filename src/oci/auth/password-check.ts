/**
 * Password checks for htpasswd users, kept off the event loop and bounded per client and user:
 *  - bcrypt runs in a small pool of worker threads (`BcryptPool`): bcryptjs's own async mode
 *    still computes in 100 ms chunks on the main thread, so 50 wrong passwords in parallel delay
 *    every other request by seconds; in workers they delay nothing but each other;
 *  - an unknown user is checked against a dummy hash of the same cost, so the answer time does
 *    not reveal which users exist;
 *  - a successful check is remembered for `cacheTtlMs` (keyed by a hash of user, password and
 *    stored entry, bounded), so a client pulling layer after layer pays bcrypt once;
 *  - failed logins are counted per client address and per user (`LoginThrottle`); past the
 *    budget the answer is 429 with `Retry-After` before any bcrypt runs. A user's budget does not
 *    stop a client whose credentials are already known good, so an attacker cannot lock a user out
 *    of a session that works.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import bcrypt from 'bcryptjs';

/** What an authenticating front end needs: one question, asked without blocking anything. */
export interface PasswordCheck {
  /** True when `password` is `user`'s. Never throws for a wrong user or password. */
  verify(user: string, password: string): Promise<boolean>;
}

/** The budgets of failed logins (README, "Bundled OCI registry"). */
export interface LoginLimits {
  /** Failed logins per client address per minute; 0 turns the limit off. */
  readonly failuresPerClientPerMinute: number;
  /** Failed logins per user name per minute; 0 turns the limit off. */
  readonly failuresPerUserPerMinute: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = {
  failuresPerClientPerMinute: 20,
  failuresPerUserPerMinute: 30,
};

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const bcrypt = require(workerData.bcryptjs);
parentPort.on('message', ({ id, password, hash }) => {
  let ok = false;
  try { ok = bcrypt.compareSync(password, hash); } catch { ok = false; }
  parentPort.postMessage({ id, ok });
});
`;

/** bcrypt comparisons on worker threads (one per core, at most `size`), queued in order. */
export class BcryptPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Array<{ password: string; hash: string; resolve: (ok: boolean) => void }> = [];
  private readonly pending = new Map<number, (ok: boolean) => void>();
  private nextId = 0;
  private readonly drainWaiters: Array<() => void> = [];

  constructor(size = Math.max(1, Math.min(4, cpus().length))) {
    const bcryptjs = createRequire(import.meta.url).resolve('bcryptjs');
    for (let i = 0; i < size; i++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { bcryptjs } });
      worker.unref(); // an idle pool never keeps the process alive
      worker.on('message', ({ id, ok }: { id: number; ok: boolean }) => {
        this.pending.get(id)?.(ok);
        this.pending.delete(id);
        this.release(worker);
      });
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  compare(password: string, hash: string): Promise<boolean> {
    return new Promise((resolve) => {
      this.queue.push({ password, hash, resolve });
      this.dispatch();
    });
  }

  private release(worker: Worker): void {
    this.idle.push(worker);
    this.dispatch();
    if (this.pending.size === 0 && this.queue.length === 0)
      for (const resolve of this.drainWaiters.splice(0)) resolve();
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!;
      const { password, hash, resolve } = this.queue.shift()!;
      const id = (this.nextId += 1);
      this.pending.set(id, resolve);
      worker.postMessage({ id, password, hash });
    }
  }

  /** Stops the workers once the comparisons already asked for have answered (a reload must not strand a login). */
  async close(): Promise<void> {
    while (this.pending.size > 0 || this.queue.length > 0)
      await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}

const CACHE_LIMIT = 1024;

/** Checks passwords against htpasswd entries (bcrypt `$2y$`/`$2a$`/`$2b$`, legacy `{SHA}`). */
export class HtpasswdCheck implements PasswordCheck {
  private readonly verified = new Map<string, number>();
  /** Same cost as the file's first bcrypt entry, so unknown users take as long as known ones. */
  private readonly dummyHash: string;

  constructor(
    private readonly entries: ReadonlyMap<string, string>,
    private readonly pool: BcryptPool,
    private readonly cacheTtlMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {
    const cost = [...entries.values()].map((hash) => /^\$2[aby]\$(\d\d)\$/.exec(hash)?.[1]).find(Boolean);
    this.dummyHash = bcrypt.hashSync(randomBytes(16).toString('hex'), Number(cost ?? 10));
  }

  /** True when a successful check of these credentials is remembered (no bcrypt needed). */
  knownGood(user: string, password: string): boolean {
    const stored = this.entries.get(user);
    if (stored === undefined) return false;
    const expires = this.verified.get(cacheKey(user, password, stored));
    return expires !== undefined && expires > this.now();
  }

  async verify(user: string, password: string): Promise<boolean> {
    const stored = this.entries.get(user);
    if (stored === undefined) {
      await this.pool.compare(password, this.dummyHash);
      return false;
    }
    const key = cacheKey(user, password, stored);
    const expires = this.verified.get(key);
    if (expires !== undefined && expires > this.now()) return true;
    if (!(await this.check(password, stored))) return false;
    if (this.verified.size >= CACHE_LIMIT) this.verified.clear();
    this.verified.set(key, this.now() + this.cacheTtlMs);
    return true;
  }

  private async check(password: string, stored: string): Promise<boolean> {
    if (/^\$2[aby]\$/.test(stored)) return this.pool.compare(password, stored.replace(/^\$2y\$/, '$2b$'));
    if (stored.startsWith('{SHA}')) {
      const expected = Buffer.from(stored.slice(5), 'base64');
      const actual = createHash('sha1').update(password).digest();
      return expected.length === actual.length && timingSafeEqual(expected, actual);
    }
    await this.pool.compare(password, this.dummyHash); // unknown format: never matches, same cost
    return false;
  }
}

function cacheKey(user: string, password: string, stored: string): string {
  return createHash('sha256').update(`${user}\0${password}\0${stored}`).digest('hex');
}

/** Counts failed logins per client and per user; `blocked` says for how long to refuse. */
export class LoginThrottle {
  private readonly byClient: RateLimiterMemory | undefined;
  private readonly byUser: RateLimiterMemory | undefined;

  constructor(limits: LoginLimits) {
    const limiter = (points: number) =>
      points > 0 ? new RateLimiterMemory({ points, duration: 60 }) : undefined;
    this.byClient = limiter(limits.failuresPerClientPerMinute);
    this.byUser = limiter(limits.failuresPerUserPerMinute);
  }

  /** Seconds to wait when the client or the user has used up its failures, else 0. */
  async blocked(client: string, user: string | undefined, knownGood: boolean): Promise<number> {
    const wait = async (limiter: RateLimiterMemory | undefined, key: string) => {
      const state = limiter && (await limiter.get(key));
      return state && state.remainingPoints <= 0 ? Math.ceil(state.msBeforeNext / 1000) : 0;
    };
    const clientWait = await wait(this.byClient, client);
    const userWait = user === undefined || knownGood ? 0 : await wait(this.byUser, `user:${user}`);
    return Math.max(clientWait, userWait);
  }

  /** Records one failed login. */
  async failed(client: string, user: string | undefined): Promise<void> {
    const consume = async (limiter: RateLimiterMemory | undefined, key: string) => {
      try {
        await limiter?.consume(key);
      } catch (error) {
        if (!(error instanceof RateLimiterRes)) throw error;
      }
    };
    await consume(this.byClient, client);
    if (user !== undefined) await consume(this.byUser, `user:${user}`);
  }
}
