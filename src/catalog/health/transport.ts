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
      agent: false,
      signal: options.deadline,
      ...(secure
        ? {
            rejectUnauthorized: !options.target.insecureSkipTlsVerify,
            ...(options.target.caBundle ? { ca: options.target.caBundle } : {}),
            servername: net.isIP(host) ? undefined : host,
          }
        : {}),
    });
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = () => {
        resolve({
          url,
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? '',
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        res.destroy();
      };
      res.on('data', (chunk: Buffer) => {
        if (size < options.maxBodyBytes) chunks.push(chunk.subarray(0, options.maxBodyBytes - size));
        size += chunk.length;
        if (size >= options.maxBodyBytes) finish();
      });
      res.once('end', finish);
      res.once('error', reject);
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
