import dns from 'node:dns';
import type { HealthReport, ProbeTarget } from '../model.js';
import type { AddressPolicy } from './address-policy.js';
import { challengeOf, classifyAnswer, classifyFailure, reporter } from './classify.js';
import { login } from './login.js';
import { get, guardedLookup, type Answer } from './transport.js';

/**
 * The health probe: `GET <public_url>/v2/` as DESIGN.md section 5 describes. Used by
 * `GET /check_container_health/<id>`, `?verify=true` and the background monitor. The sequence is
 * here; the guarded transport is transport.ts, the docker-style login login.ts, and the verdict
 * classify.ts.
 *
 * Safety: no name, redirect or DNS answer can lead the probe to an address the policy refuses
 * (transport.ts). Credentials go only to the registry's own origin and to its token realm, and
 * never appear in a report, an error or a log line.
 */

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

export function createProber(deps: ProberDeps): (target: ProbeTarget) => Promise<HealthReport> {
  const now = deps.now ?? Date.now;
  const maxBodyBytes = deps.maxBodyBytes ?? 4096;
  const lookup = guardedLookup(deps.policy, deps.lookup ?? dns.lookup);

  return async (target) => {
    const report = reporter(target.url, now(), now);
    let probeUrl: URL;
    try {
      probeUrl = new URL('v2/', target.url.endsWith('/') ? target.url : `${target.url}/`);
    } catch {
      return report({
        probe_url: target.url,
        status: 'unhealthy',
        detail: 'the public URL is not a valid URL',
        error: 'invalid URL',
      });
    }
    const timeoutMs = target.timeoutMs ?? deps.defaultTimeoutMs;
    const deadline = AbortSignal.timeout(timeoutMs);
    const request = (url: URL, headers: Record<string, string> = {}) =>
      get(url, headers, { lookup, policy: deps.policy, deadline, maxBodyBytes, target });

    let answer: Answer;
    try {
      answer = await request(probeUrl);
      for (let hops = 0; REDIRECTS.has(answer.status) && answer.headers.location; hops++) {
        const next = new URL(answer.headers.location, answer.url);
        const refusal =
          next.origin !== probeUrl.origin
            ? `/v2/ redirects to another host (${next.origin}), which is not followed`
            : hops >= MAX_REDIRECTS
              ? 'too many redirects'
              : undefined;
        if (refusal !== undefined) {
          return report({
            probe_url: probeUrl.href,
            reachable: true,
            status_code: answer.status,
            status_text: answer.statusText,
            status: 'unhealthy',
            detail: refusal,
          });
        }
        answer = await request(next);
      }
    } catch (error) {
      return classifyFailure(error, probeUrl.href, timeoutMs, report);
    }

    let credentialsAccepted: boolean | null | undefined;
    const challenge = challengeOf(answer);
    if (target.credentials && answer.status === 401 && challenge) {
      credentialsAccepted = await login(answer.url, challenge, target.credentials, request).catch(() => null);
    } else if (target.credentials) {
      credentialsAccepted = null;
    }
    return classifyAnswer(answer, probeUrl, credentialsAccepted, report);
  };
}
