import dns, { type LookupAddress } from 'node:dns';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import net, { type LookupFunction } from 'node:net';
import type { HealthReport } from '../model.js';
import type { AddressPolicy } from './address-policy.js';
import { parseChallenge } from './www-authenticate.js';

/**
 * The health probe: `GET <public_url>/v2/` as DESIGN.md section 5 describes. Used by
 * `GET /check_container_health/<id>`, `?verify=true` and the background monitor.
 *
 * Safety: every connection goes through `guardedLookup`, which checks the address the socket is
 * about to use against the policy (IP literals are checked before connecting, since Node does not
 * resolve them), so no name, redirect or DNS answer can lead the probe to a refused address.
 * Credentials go only to the registry's own origin and to its token realm, and never appear in a
 * report, an error or a log line.
 */

export interface ProbeTarget {
  /** The registry's `container_registry_public_url`. */
  url: string;
  timeoutMs?: number;
  insecureSkipTlsVerify?: boolean;
  /** PEM certificates to trust for this registry. */
  caBundle?: string;
  credentials?: { username?: string; password?: string; token?: string };
}

export interface ProberDeps {
  policy: AddressPolicy;
  /** DNS resolution; injectable so tests can make a name resolve anywhere without a packet. */
  lookup?: typeof dns.lookup;
  now?: () => number;
  defaultTimeoutMs: number;
  /** Bytes of a response body read at most; the rest is discarded with the socket. */
  maxBodyBytes?: number;
}

const MAX_REDIRECTS = 3;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const API_VERSION = 'registry/2.0';

/** The address a probe was about to connect to is refused by the policy. */
export class RefusedAddressError extends Error {
  override name = 'RefusedAddressError';
  readonly code = 'EREFUSEDADDRESS';
}

interface Answer {
  readonly url: URL;
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

export function createProber(deps: ProberDeps): (target: ProbeTarget) => Promise<HealthReport> {
  const now = deps.now ?? Date.now;
  const maxBodyBytes = deps.maxBodyBytes ?? 4096;
  const lookup = guardedLookup(deps.policy, deps.lookup ?? dns.lookup);

  return async (target) => {
    const started = now();
    const checkedAt = new Date(started).toISOString();
    let probeUrl: URL;
    try {
      probeUrl = new URL('v2/', target.url.endsWith('/') ? target.url : `${target.url}/`);
    } catch {
      return report({
        url: target.url,
        status: 'unhealthy',
        reason: 'the public URL is not a valid URL',
        error: 'invalid URL',
      });
    }
    const timeoutMs = target.timeoutMs ?? deps.defaultTimeoutMs;
    const deadline = AbortSignal.timeout(timeoutMs);

    function report(
      fields: Partial<HealthReport> & Pick<HealthReport, 'status' | 'reason' | 'url'>,
    ): HealthReport {
      return {
        reachable: fields.reachable ?? false,
        status_code: fields.status_code ?? null,
        reason: fields.reason,
        url: fields.url,
        status: fields.status,
        oci_compatible: fields.oci_compatible ?? false,
        api_version: fields.api_version ?? null,
        auth: fields.auth ?? null,
        latency_ms: Math.max(0, now() - started),
        checked_at: checkedAt,
        error: fields.error ?? null,
        ...(fields.credentials_accepted !== undefined
          ? { credentials_accepted: fields.credentials_accepted }
          : {}),
      };
    }

    const request = (url: URL, headers: Record<string, string> = {}) =>
      get(url, headers, { lookup, policy: deps.policy, deadline, maxBodyBytes, target });

    let answer: Answer;
    try {
      answer = await request(probeUrl);
      for (let hops = 0; REDIRECTS.has(answer.status) && answer.headers.location; hops++) {
        const next = new URL(answer.headers.location, answer.url);
        if (next.origin !== probeUrl.origin) {
          return report({
            url: probeUrl.href,
            reachable: true,
            status_code: answer.status,
            status: 'unhealthy',
            reason: `/v2/ redirects to another host (${next.origin}), which is not followed`,
          });
        }
        if (hops >= MAX_REDIRECTS) {
          return report({
            url: probeUrl.href,
            reachable: true,
            status_code: answer.status,
            status: 'unhealthy',
            reason: 'too many redirects',
          });
        }
        answer = await request(next);
      }
    } catch (error) {
      return failure(error, probeUrl.href, timeoutMs, report);
    }

    const apiVersion = headerValue(answer.headers['docker-distribution-api-version']);
    const ociCompatible = apiVersion === API_VERSION;
    const challenge = parseChallenge(headerValue(answer.headers['www-authenticate']));
    const auth = challenge
      ? {
          scheme: challenge.scheme,
          ...(challenge.params.realm !== undefined ? { realm: challenge.params.realm } : {}),
          ...(challenge.params.service !== undefined ? { service: challenge.params.service } : {}),
        }
      : null;
    const base = {
      url: probeUrl.href,
      reachable: true,
      status_code: answer.status,
      oci_compatible: ociCompatible,
      api_version: apiVersion ?? null,
      auth,
    };

    let credentialsAccepted: boolean | null | undefined;
    if (target.credentials && answer.status === 401 && challenge) {
      credentialsAccepted = await login(answer.url, challenge, target.credentials, request).catch(() => null);
    } else if (target.credentials) {
      credentialsAccepted = null;
    }
    const withCredentials =
      credentialsAccepted === undefined ? {} : { credentials_accepted: credentialsAccepted };

    if (answer.status === 200 && ociCompatible) {
      return report({
        ...base,
        ...withCredentials,
        status: 'healthy',
        reason: 'the registry answered /v2/ with 200',
      });
    }
    if (answer.status === 200) {
      return report({
        ...base,
        ...withCredentials,
        status: 'unhealthy',
        reason: `answered 200 without "Docker-Distribution-API-Version: ${API_VERSION}": not an OCI registry`,
      });
    }
    if (answer.status === 401 && challenge) {
      return report({
        ...base,
        ...withCredentials,
        status: 'healthy',
        reason: `the registry is up and requires ${challenge.scheme} authentication`,
      });
    }
    return report({
      ...base,
      ...withCredentials,
      status: 'unhealthy',
      reason: `/v2/ answered HTTP ${answer.status}`,
    });
  };
}

/**
 * Logs in the way docker does: Basic on /v2/, or the Bearer token flow against the challenge's
 * realm. True when the registry then answers 200, false when it refuses the credentials.
 */
async function login(
  registryUrl: URL,
  challenge: ReturnType<typeof parseChallenge> & object,
  credentials: NonNullable<ProbeTarget['credentials']>,
  request: (url: URL, headers?: Record<string, string>) => Promise<Answer>,
): Promise<boolean | null> {
  const basic =
    credentials.username !== undefined || credentials.password !== undefined
      ? `Basic ${Buffer.from(`${credentials.username ?? ''}:${credentials.password ?? ''}`).toString('base64')}`
      : undefined;
  const scheme = challenge.scheme.toLowerCase();
  if (scheme === 'basic') {
    if (!basic) return null;
    const retry = await request(registryUrl, { authorization: basic });
    return retry.status === 200 ? true : retry.status === 401 || retry.status === 403 ? false : null;
  }
  if (scheme !== 'bearer') return null;
  let token = credentials.token;
  if (basic || !token) {
    const realm = challenge.params.realm;
    if (!realm) return null;
    const tokenUrl = new URL(realm);
    if (tokenUrl.protocol !== 'https:' && tokenUrl.protocol !== 'http:') return null;
    if (challenge.params.service) tokenUrl.searchParams.set('service', challenge.params.service);
    const answer = await request(tokenUrl, basic ? { authorization: basic } : {});
    if (answer.status === 401 || answer.status === 403) return false;
    if (answer.status !== 200) return null;
    const body = JSON.parse(answer.body) as { token?: unknown; access_token?: unknown };
    const issued = typeof body.token === 'string' ? body.token : body.access_token;
    if (typeof issued !== 'string') return null;
    token = issued;
  }
  const retry = await request(registryUrl, { authorization: `Bearer ${token}` });
  return retry.status === 200 ? true : retry.status === 401 || retry.status === 403 ? false : null;
}

/** One GET with the guard, the deadline and a bounded body read. */
function get(
  url: URL,
  headers: Record<string, string>,
  options: {
    lookup: LookupFunction;
    policy: AddressPolicy;
    deadline: AbortSignal;
    maxBodyBytes: number;
    target: ProbeTarget;
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
      method: 'GET',
      headers: { accept: 'application/json', 'user-agent': 'aios-registry-catalog-health/1', ...headers },
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

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function failure(
  error: unknown,
  url: string,
  timeoutMs: number,
  report: (fields: Partial<HealthReport> & Pick<HealthReport, 'status' | 'reason' | 'url'>) => HealthReport,
): HealthReport {
  const code = String((error as { code?: unknown }).code ?? '');
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof RefusedAddressError)
    return report({
      url,
      status: 'refused',
      reason: `refused by the probe policy: ${message}`,
      error: message,
    });
  if (
    (error as Error).name === 'AbortError' ||
    (error as Error).name === 'TimeoutError' ||
    code === 'ABORT_ERR'
  ) {
    return report({
      url,
      status: 'unreachable',
      reason: `no answer within ${timeoutMs} ms`,
      error: 'timeout',
    });
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return report({ url, status: 'unreachable', reason: 'the host name does not resolve', error: code });
  if (code === 'ECONNREFUSED')
    return report({ url, status: 'unreachable', reason: 'connection refused', error: code });
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code) || /certificate|TLS|SSL/i.test(message)) {
    return report({
      url,
      status: 'unreachable',
      reason: `TLS handshake failed: ${message}`,
      error: code || 'TLS',
    });
  }
  return report({
    url,
    status: 'unreachable',
    reason: `the connection failed: ${message}`,
    error: code || message,
  });
}
