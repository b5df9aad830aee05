import type { LookupFunction } from 'node:net';
import pLimit from 'p-limit';
import type { ProbeTarget } from '../model.js';
import type { AddressPolicy } from './address-policy.js';
import { CrawlAgents } from './crawl-agents.js';
import { basicAuthorization, bearerToken } from './login.js';
import { get, headerValue, type Answer } from './transport.js';
import { parseChallenge } from './www-authenticate.js';

/**
 * The crawler's HTTP client for one registry and one crawl: every hop through the probe's guarded
 * transport (SSRF policy, TLS settings, bounded bodies), at most `concurrency` requests in
 * flight, a request budget, `429`/`Retry-After` honoured, and the docker login (Basic, or Bearer
 * tokens per scope, cached for the crawl). Credentials are sent only to the registry's origin
 * (every URL asked for must be on it) and to the token realm its challenge names. Connections are
 * kept alive for the crawl (crawl-agents.ts: at most `concurrency` per origin, each new one
 * through the guard) and closed by `close()`.
 */

/** The crawl ran out of requests, time, or was refused a URL: it stops and is partial. */
export class CrawlStop extends Error {
  override name = 'CrawlStop';
}

export interface CrawlClientOptions {
  readonly target: ProbeTarget;
  readonly lookup: LookupFunction;
  readonly policy: AddressPolicy;
  readonly concurrency: number;
  readonly requestBudget: number;
  /** The whole crawl's deadline. */
  readonly deadline: AbortSignal;
  /** Timeout of one request. */
  readonly requestTimeoutMs: number;
  /** Longest `Retry-After` waited for; longer is an error. */
  readonly maxRetryAfterMs: number;
}

const MAX_RETRIES_429 = 3;

export class CrawlClient {
  requests = 0;
  /** Platforms of config blobs already read in this crawl, by digest. */
  readonly configs = new Map<
    string,
    Promise<{ os: string; architecture: string; variant?: string } | undefined>
  >();
  readonly origin: string;
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly agents: CrawlAgents;
  private readonly tokens = new Map<string, Promise<string | undefined>>();
  /** Set once the registry asked for Basic: sent with every later request. */
  private basic: string | undefined;

  constructor(
    readonly base: URL,
    private readonly options: CrawlClientOptions,
  ) {
    this.origin = base.origin;
    this.limit = pLimit(options.concurrency);
    this.agents = new CrawlAgents(options.concurrency);
  }

  /** Closes the crawl's connections (call once the crawl is done). */
  close(): void {
    this.agents.close();
  }

  /**
   * One request to the registry (`path` relative to its base, or an absolute URL on its origin),
   * logged in for `scope` when the registry asks. Returns the final answer, whatever its status.
   */
  async request(
    target: string | URL,
    scope: string,
    init: { method?: 'GET' | 'HEAD'; accept?: string; maxBodyBytes: number },
  ): Promise<Answer> {
    const url = typeof target === 'string' ? new URL(target, this.base) : target;
    if (url.origin !== this.origin) throw new CrawlStop(`refused a URL on another origin (${url.origin})`);
    let answer = await this.send(url, scope, init);
    if (answer.status === 401) {
      const authorization = await this.authorize(answer, scope);
      if (authorization !== undefined) answer = await this.send(url, scope, init);
    }
    return answer;
  }

  private async send(
    url: URL,
    scope: string,
    init: { method?: 'GET' | 'HEAD'; accept?: string; maxBodyBytes: number },
  ): Promise<Answer> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.tokens.get(scope);
      const headers: Record<string, string> = {};
      if (init.accept) headers.accept = init.accept;
      if (token) headers.authorization = `Bearer ${token}`;
      else if (this.basic) headers.authorization = this.basic;
      const answer = await this.hop(url, headers, init);
      if (answer.status !== 429) return answer;
      const waitMs = retryAfterMs(headerValue(answer.headers['retry-after']));
      if (attempt >= MAX_RETRIES_429 || waitMs > this.options.maxRetryAfterMs)
        throw new CrawlStop(
          `rate limited (429) at ${url.pathname}; Retry-After ${Math.round(waitMs / 1000)} s`,
        );
      await sleep(waitMs, this.options.deadline);
    }
  }

  /** One guarded request, counted against the budget, at most `concurrency` at once. */
  private hop(
    url: URL,
    headers: Record<string, string>,
    init: { method?: 'GET' | 'HEAD'; maxBodyBytes: number },
  ): Promise<Answer> {
    return this.limit(async () => {
      if (this.options.deadline.aborted) throw new CrawlStop('the crawl timed out');
      if (this.requests >= this.options.requestBudget)
        throw new CrawlStop(`the request budget (${this.options.requestBudget}) is spent`);
      for (let attempt = 0; ; attempt++) {
        this.requests++;
        try {
          return await get(url, headers, {
            lookup: this.options.lookup,
            policy: this.options.policy,
            deadline: AbortSignal.any([
              this.options.deadline,
              AbortSignal.timeout(this.options.requestTimeoutMs),
            ]),
            maxBodyBytes: init.maxBodyBytes,
            target: this.options.target,
            method: init.method,
            userAgent: 'aios-registry-catalog-crawler/1',
            agent: this.agents.for(url),
          });
        } catch (error) {
          if (this.options.deadline.aborted) throw new CrawlStop('the crawl timed out');
          // A kept-alive socket the server closed as we reused it: GET and HEAD are safe to
          // send once more, on a fresh connection if need be.
          const code = (error as NodeJS.ErrnoException).code;
          if (
            attempt === 0 &&
            (code === 'ECONNRESET' || code === 'EPIPE') &&
            this.requests < this.options.requestBudget
          )
            continue;
          throw error;
        }
      }
    });
  }

  /** Answers a 401: Basic with the stored credentials, or a Bearer token for `scope`. Undefined: no way in. */
  private async authorize(answer: Answer, scope: string): Promise<string | undefined> {
    const challenge = parseChallenge(headerValue(answer.headers['www-authenticate']));
    if (!challenge) return undefined;
    const credentials = this.options.target.credentials;
    if (challenge.scheme.toLowerCase() === 'basic') {
      if (this.basic !== undefined) return undefined; // already refused
      this.basic = basicAuthorization(credentials);
      return this.basic;
    }
    if (challenge.scheme.toLowerCase() !== 'bearer') return undefined;
    // A token fetched for this scope already and still refused: no retry loop.
    if (this.tokens.has(scope)) return undefined;
    const fetched = bearerToken(
      challenge,
      credentials,
      // The realm may be on another origin: only the token request goes there.
      (url, headers = {}) => this.hop(url, headers, { maxBodyBytes: 64 * 1024 }),
      scope,
    ).then((token) => (typeof token === 'string' ? token : undefined));
    this.tokens.set(scope, fetched);
    return fetched;
  }
}

/** `Retry-After` in seconds or as an HTTP date; 1 s when absent or unreadable. */
export function retryAfterMs(value: string | undefined): number {
  if (value === undefined) return 1_000;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? 1_000 : Math.max(0, at - Date.now());
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new CrawlStop('the crawl timed out'));
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new CrawlStop('the crawl timed out'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
