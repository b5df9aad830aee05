import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressPolicy } from './address-policy.js';
import { guardedLookup } from './transport.js';

/**
 * Outbound webhook requests, through the probe's SSRF guard: the address a socket is about to
 * use is checked against the same `AddressPolicy` (IP literals before connecting, names after
 * DNS), redirects are never followed (a 3xx is a failed attempt), the whole request has one
 * deadline and the answer's body is read to at most 4 KiB (then dropped).
 */

/** What one POST came to: a status (any), or an error sentence (refused address, timeout, reset...). */
export type PostOutcome =
  | { readonly status: number; readonly error?: undefined }
  | { readonly status?: undefined; readonly error: string };

export type WebhookPost = (
  url: string,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
) => Promise<PostOutcome>;

const MAX_ANSWER_BYTES = 4096;

/** Why `url` may not be a webhook destination (scheme, credentials, a refused address), or undefined. */
export async function destinationProblem(
  url: string,
  policy: AddressPolicy,
  lookup: typeof dns.lookup = dns.lookup,
): Promise<string | undefined> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'is not a URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return 'must be http or https';
  if (parsed.username || parsed.password) return 'must not carry credentials';
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(host)) {
    const verdict = policy.check(host);
    return verdict.allowed ? undefined : `is refused: ${verdict.reason}`;
  }
  return new Promise((resolve) => {
    guardedLookup(policy, lookup)(host, { all: true }, (error) =>
      resolve(error ? `is refused: ${error.message}` : undefined),
    );
  });
}

/** The POST the delivery job sends with; `lookup` is injectable for tests of names. */
export function createWebhookPost(
  policy: AddressPolicy,
  lookup: typeof dns.lookup = dns.lookup,
): WebhookPost {
  const guarded = guardedLookup(policy, lookup);
  return (url, headers, body, timeoutMs) =>
    new Promise((resolve) => {
      let settled = false;
      const deadline: { timer?: NodeJS.Timeout } = {};
      const done = (outcome: PostOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline.timer);
        resolve(outcome);
      };
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        return done({ error: 'not a URL' });
      }
      const host = parsed.hostname.replace(/^\[|\]$/g, '');
      if (net.isIP(host)) {
        const verdict = policy.check(host);
        if (!verdict.allowed) return done({ error: `refused address: ${verdict.reason}` });
      }
      const secure = parsed.protocol === 'https:';
      const req = (secure ? https : http).request(parsed, {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        lookup: guarded,
        agent: false,
        ...(secure ? { servername: net.isIP(host) ? undefined : host } : {}),
      });
      deadline.timer = setTimeout(() => {
        req.destroy();
        done({ error: `no answer within ${timeoutMs} ms` });
      }, timeoutMs);
      req.once('error', (error) => done({ error: error.message }));
      req.once('response', (res) => {
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) res.destroy();
        });
        const finish = () => {
          done({ status: res.statusCode ?? 0 });
          req.destroy();
        };
        res.once('end', finish);
        res.once('close', finish);
        res.once('error', finish);
      });
      req.end(body);
    });
}
