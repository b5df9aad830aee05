import type dns from 'node:dns';
import type { LookupAddress } from 'node:dns';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import net, { type LookupFunction } from 'node:net';
import type { AddressPolicy } from './address-policy.js';
import type { ProbeTarget } from '../model.js';

/**
 * How a probe reaches a registry: one guarded GET at a time. Every connection goes through
 * `guardedLookup`, which checks the address the socket is about to use against the policy (IP
 * literals are checked before connecting, since Node does not resolve them), so no name,
 * redirect or DNS answer can lead the probe to a refused address.
 */

/** The address a probe was about to connect to is refused by the policy. */
export class RefusedAddressError extends Error {
  override name = 'RefusedAddressError';
  readonly code = 'EREFUSEDADDRESS';
}

/** One answer to a GET: where it came from, its status, headers and (bounded) body. */
export interface Answer {
  readonly url: URL;
  readonly status: number;
  /** The status line's reason phrase as the server sent it (`OK`, `Not Found`); may be empty. */
  readonly statusText: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

export /** One GET with the guard, the deadline and a bounded body read. */
function get(
  url: URL,
  headers: Record<string, string>,
  options: {
    lookup: LookupFunction;
    policy: AddressPolicy;
    deadline: AbortSignal;
    maxBodyBytes: number;
    target: ProbeTarget;
    /** GET unless given (the crawler sends HEAD for manifests). */
    method?: 'GET' | 'HEAD';
    userAgent?: string;
    /**
     * A keep-alive agent (the crawler's, crawl-agents.ts) whose new connections still go through
     * `lookup`; absent: a connection of its own, closed after the answer (the probe).
     */
    agent?: http.Agent;
  },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (net.isIP(host)) {
      const verdict = options.policy.check(host);
      if (!verdict.allowed) return reject(new RefusedAddressError(verdict.reason));
    }
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') return reject(new Error(`unsupported scheme ${url.protocol}`));
    const req = (secure ? https : http).request(url, {
      method: options.method ?? 'GET',
      headers: {
        accept: 'application/json',
        'user-agent': options.userAgent ?? 'aios-registry-catalog-health/1',
        ...headers,
      },
      lookup: options.lookup,
      agent: options.agent ?? false,
      ...(secure
        ? {
            rejectUnauthorized: !options.target.insecureSkipTlsVerify,
            ...(options.target.caBundle ? { ca: options.target.caBundle } : {}),
            servername: net.isIP(host) ? undefined : host,
          }
        : {}),
    });
    // The deadline is watched by hand rather than with `signal`: a pooled socket outlives its
    // request, and an abort firing after the answer must not destroy it under the next request.
    const onAbort = () => req.destroy(options.deadline.reason as Error);
    const settle = () => options.deadline.removeEventListener('abort', onAbort);
    if (options.deadline.aborted) return reject(options.deadline.reason as Error);
    options.deadline.addEventListener('abort', onAbort, { once: true });
    req.once('error', (error) => {
      settle();
      reject(error);
    });
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (cut: boolean) => {
        if (done) return;
        done = true;
        settle();
        resolve({
          url,
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? '',
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        // A body read to its end leaves the socket to the agent's pool; one cut at the cap
        // cannot be reused (its rest is unread) and is closed.
        if (cut || !options.agent) res.destroy();
      };
      // A body declared longer than the cap is not read at all (the caller sees the header).
      const declared = Number(res.headers['content-length']);
      if ((options.method ?? 'GET') !== 'HEAD' && declared > options.maxBodyBytes) return finish(true);
      res.on('data', (chunk: Buffer) => {
        if (size < options.maxBodyBytes) chunks.push(chunk.subarray(0, options.maxBodyBytes - size));
        size += chunk.length;
        if (size > options.maxBodyBytes || (size === options.maxBodyBytes && !options.agent)) finish(true);
      });
      res.once('end', () => finish(false));
      res.once('error', (error) => {
        settle();
        reject(error);
      });
      res.once('close', () => {
        if (done) return;
        done = true;
        settle();
        reject(
          Object.assign(new Error('the connection closed before the answer ended'), { code: 'ECONNRESET' }),
        );
      });
    });
    req.end();
  });
}

/** A DNS lookup that fails with `RefusedAddressError` when any resolved address is refused. */
export function guardedLookup(policy: AddressPolicy, lookup: typeof dns.lookup): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '', 0);
      const list = addresses as unknown as LookupAddress[];
      const refused = list.map((entry) => policy.check(entry.address)).find((verdict) => !verdict.allowed);
      if (list.length === 0)
        return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
      if (refused && !refused.allowed)
        return callback(new RefusedAddressError(`${hostname} resolves to ${refused.reason}`), '', 0);
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    });
  };
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
