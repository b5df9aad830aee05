/**
 * HTTP client of one upstream registry. It speaks the Docker registry auth flow: a request
 * answered `401` with a `Bearer` challenge gets a token from the challenge's realm (with the
 * configured credentials as Basic auth when there are any, anonymously otherwise) and is sent
 * once more; a `Basic` challenge is answered with the credentials. Tokens are cached per scope
 * until shortly before they expire. Every round trip a client waits for is bounded: the timer
 * covers the token fetch and the response headers, never a body being streamed.
 */
import { OciError } from '../errors.js';
import type { UpstreamConfig } from './config.js';
import { Http1Pool, type Http1Response } from './http1-get.js';

/** Why an upstream could not give an answer; stale-if-error and the circuit breaker key on it. */
export const FAILURE_REASONS = [
  'timeout',
  'connection',
  'rate-limited',
  'server-error',
  'unauthorized',
  'unexpected',
  /** Not a round trip: the circuit breaker refused to wait on an upstream that keeps failing. */
  'circuit-open',
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** An upstream round trip that failed; `toOciError` is what a client without a cached copy gets. */
export class UpstreamFailure extends Error {
  override name = 'UpstreamFailure';
  constructor(
    readonly reason: FailureReason,
    readonly upstream: string,
    message: string,
    readonly status?: number,
    readonly retryAfter?: string,
  ) {
    super(message);
  }

  toOciError(): OciError {
    const detail = {
      upstream: this.upstream,
      reason: this.reason,
      ...(this.status ? { status: this.status } : {}),
    };
    const message = `upstream ${this.upstream}: ${this.message}`;
    if (this.reason === 'timeout') return new OciError('UpstreamTimeout', message, detail);
    if (this.reason === 'rate-limited')
      return new OciError('TooManyRequests', message, detail, { 'Retry-After': this.retryAfter ?? '10' });
    if (this.reason === 'unauthorized') return new OciError('UpstreamDenied', message, detail);
    return new OciError('UpstreamUnavailable', message, detail);
  }
}

/** One request to the upstream. */
export interface UpstreamRequest {
  readonly method: 'GET' | 'HEAD';
  /** Path below the base URL, starting with `/v2/`. */
  readonly path: string;
  readonly accept?: string;
  /** Token scope, e.g. `repository:library/redis:pull`. */
  readonly scope: string;
  /** Bound on the time until the response headers (token fetch included). */
  readonly timeoutMs: number;
  /** Aborts the request and, after the headers, its body. */
  readonly signal?: AbortSignal;
}

interface Token {
  readonly value: string;
  readonly expiresAt: number;
}

/** Tokens are used until this long before their announced expiry. */
const TOKEN_SLACK_MS = 10_000;
const TOKEN_CACHE_LIMIT = 1000;

function parseChallenge(
  header: string | null,
): { scheme: string; params: Record<string, string> } | undefined {
  if (header === null) return undefined;
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (match === null) return undefined;
  const params: Record<string, string> = {};
  for (const pair of (match[2] ?? '').matchAll(/(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))/g)) {
    params[(pair[1] ?? '').toLowerCase()] = pair[2] ?? pair[3] ?? '';
  }
  return { scheme: (match[1] ?? '').toLowerCase(), params };
}

/** Turns a thrown fetch error into a failure (timeout or connection), or rethrows an abort by the caller. */
function failureOf(upstream: string, error: unknown, timedOut: boolean): UpstreamFailure {
  if (timedOut) return new UpstreamFailure('timeout', upstream, 'no answer within the upstream timeout');
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.code ?? cause?.message ?? (error as Error).message;
  return new UpstreamFailure('connection', upstream, `connection failed (${detail})`);
}

/** Classifies a response the caller cannot use (anything but 2xx and 404). */
export function failureOfStatus(upstream: string, response: Response): UpstreamFailure {
  return failureOfResponse(upstream, response.status, response.headers.get('retry-after') ?? undefined);
}

/** `failureOfStatus` from a status and its `Retry-After`. */
export function failureOfResponse(
  upstream: string,
  status: number,
  retryAfter: string | undefined,
): UpstreamFailure {
  if (status === 429)
    return new UpstreamFailure('rate-limited', upstream, 'rate limited (429)', status, retryAfter);
  if (status === 401 || status === 403)
    return new UpstreamFailure('unauthorized', upstream, `refused the credentials (${status})`, status);
  if (status >= 500) return new UpstreamFailure('server-error', upstream, `answered ${status}`, status);
  return new UpstreamFailure('unexpected', upstream, `answered ${status}`, status);
}

/** Redirects followed for a blob (registries send blobs to a CDN or object store). */
const MAX_REDIRECTS = 5;

/** A streamed blob or manifest response (`http1-get.ts`: bodies read in large pieces). */
export interface BlobResponse {
  readonly status: number;
  readonly size: number | undefined;
  readonly body: Http1Response;
  /** `Http1Response.recycle`: a chunk whose every use is done goes back to the reader. */
  readonly recycle: (chunk: Buffer) => void;
}

export class UpstreamClient {
  private readonly tokens = new Map<string, Token>();
  private readonly connections = new Http1Pool();
  /** Set once the upstream asked for Basic auth: later requests send it up front. */
  private basic = false;

  constructor(
    readonly config: UpstreamConfig,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Sends the request (and, after a 401 challenge, once more with a token or Basic auth). Returns
   * the response of any status; throws `UpstreamFailure` on timeout or connection failure.
   */
  async send(request: UpstreamRequest): Promise<Response> {
    return this.underDeadline(request, (signal) => this.exchange(request, signal), true);
  }

  /**
   * GETs a blob (or a manifest: a cold pull's first request then skips loading fetch's undici,
   * and the blob GET after it reuses the connection) as a stream: the same auth flow and header deadline as `send`, redirects
   * followed (Authorization dropped when one leaves the origin). The body is the caller's to read
   * or destroy; `request.signal` aborts it.
   */
  async stream(request: UpstreamRequest): Promise<BlobResponse> {
    // The caller's signal stays linked after the headers: it keeps aborting the body (the
    // deadline covers only the headers).
    const response = await this.underDeadline(
      request,
      async (signal) => {
        let response = await this.getFollowing(request, signal);
        if (response.statusCode === 401) {
          const challenge = parseChallenge(response.headers['www-authenticate'] ?? null);
          response.resume();
          if (challenge?.scheme === 'bearer' && challenge.params.realm !== undefined) {
            await this.fetchToken(challenge.params, request.scope, signal);
            response = await this.getFollowing(request, signal);
          } else if (challenge?.scheme === 'basic' && this.config.credentials !== undefined && !this.basic) {
            this.basic = true;
            response = await this.getFollowing(request, signal);
          }
        }
        // A body error after a lost race (or before the caller reads) must not go unhandled.
        response.on('error', () => undefined);
        return response;
      },
      false,
    );
    const length = response.headers['content-length'];
    return {
      status: response.statusCode,
      size: length === undefined ? undefined : Number(length),
      body: response,
      recycle: (chunk) => response.recycle(chunk),
    };
  }

  /**
   * Runs `exchange` with a signal that aborts on the request's deadline or the caller's signal;
   * throws `UpstreamFailure` on timeout or connection failure (a caller's abort passes through).
   * `unlinkCallerSignal` drops the link to the caller's signal once the exchange settles.
   */
  private async underDeadline<T>(
    request: UpstreamRequest,
    exchange: (signal: AbortSignal) => Promise<T>,
    unlinkCallerSignal: boolean,
  ): Promise<T> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    // The deadline rejects on its own instead of waiting for the aborted fetch to unwind, so a
    // client gets its answer (stale copy or error) right at the timeout.
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new UpstreamFailure('timeout', this.config.host, 'no answer within the upstream timeout'));
        controller.abort();
      }, request.timeoutMs);
    });
    const onAbort = () => controller.abort();
    request.signal?.addEventListener('abort', onAbort, { once: true });
    const pending = exchange(controller.signal);
    pending.catch(() => undefined);
    try {
      return await Promise.race([pending, deadline]);
    } catch (error) {
      if (error instanceof UpstreamFailure) throw error;
      if (request.signal?.aborted) throw error;
      throw failureOf(this.config.host, error, false);
    } finally {
      clearTimeout(timer);
      if (unlinkCallerSignal) request.signal?.removeEventListener('abort', onAbort);
    }
  }

  private async getFollowing(request: UpstreamRequest, signal: AbortSignal): Promise<Http1Response> {
    const origin = new URL(this.config.url).origin;
    let url = new URL(`${this.config.url}${request.path}`);
    for (let hop = 0; ; hop += 1) {
      const headers: Record<string, string> = { 'User-Agent': 'aios-registry-proxy' };
      if (request.accept !== undefined) headers.Accept = request.accept;
      const authorization = url.origin === origin ? this.authorization(request.scope) : undefined;
      if (authorization !== undefined) headers.Authorization = authorization;
      const response = await this.connections.get(url, headers, signal);
      const location = response.headers.location;
      if (response.statusCode < 300 || response.statusCode >= 400 || location === undefined) return response;
      response.resume();
      if (hop >= MAX_REDIRECTS)
        throw new UpstreamFailure('unexpected', this.config.host, 'too many redirects');
      url = new URL(location, url);
      if (url.protocol !== 'https:' && url.protocol !== 'http:')
        throw new UpstreamFailure('unexpected', this.config.host, 'redirect to a non-http URL');
    }
  }

  private async exchange(request: UpstreamRequest, signal: AbortSignal): Promise<Response> {
    let response = await this.fetchOnce(request, signal);
    if (response.status === 401) {
      const challenge = parseChallenge(response.headers.get('www-authenticate'));
      await response.body?.cancel();
      if (challenge?.scheme === 'bearer' && challenge.params.realm !== undefined) {
        await this.fetchToken(challenge.params, request.scope, signal);
        response = await this.fetchOnce(request, signal);
      } else if (challenge?.scheme === 'basic' && this.config.credentials !== undefined && !this.basic) {
        this.basic = true;
        response = await this.fetchOnce(request, signal);
      }
    }
    return response;
  }

  private authorization(scope: string): string | undefined {
    const token = this.tokens.get(scope);
    if (token !== undefined && token.expiresAt > this.now()) return `Bearer ${token.value}`;
    const credentials = this.config.credentials;
    if (this.basic && credentials !== undefined) {
      return `Basic ${Buffer.from(`${credentials.username}:${credentials.reveal()}`).toString('base64')}`;
    }
    return undefined;
  }

  private fetchOnce(request: UpstreamRequest, signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { 'User-Agent': 'aios-registry-proxy' };
    if (request.accept !== undefined) headers.Accept = request.accept;
    const authorization = this.authorization(request.scope);
    if (authorization !== undefined) headers.Authorization = authorization;
    // fetch follows redirects (blob CDNs) and drops Authorization when one leaves the origin.
    return fetch(`${this.config.url}${request.path}`, { method: request.method, headers, signal });
  }

  private async fetchToken(
    params: Record<string, string>,
    scope: string,
    signal: AbortSignal,
  ): Promise<void> {
    const realm = new URL(params.realm ?? '');
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:')
      throw new UpstreamFailure('unexpected', this.config.host, 'token realm is not an http(s) URL');
    if (params.service !== undefined) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', params.scope ?? scope);
    const headers: Record<string, string> = { 'User-Agent': 'aios-registry-proxy' };
    const credentials = this.config.credentials;
    if (credentials !== undefined) {
      headers.Authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.reveal()}`).toString('base64')}`;
    }
    const response = await fetch(realm, { headers, signal });
    if (response.status !== 200) {
      await response.body?.cancel();
      throw failureOfStatus(this.config.host, response);
    }
    const body = (await response.json()) as { token?: string; access_token?: string; expires_in?: number };
    const value = body.token ?? body.access_token;
    if (typeof value !== 'string' || value === '')
      throw new UpstreamFailure('unexpected', this.config.host, 'token endpoint answered without a token');
    const lifetime = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    if (this.tokens.size >= TOKEN_CACHE_LIMIT) this.tokens.clear();
    this.tokens.set(scope, { value, expiresAt: this.now() + lifetime * 1000 - TOKEN_SLACK_MS });
  }
}
