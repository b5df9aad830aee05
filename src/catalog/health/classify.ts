import { STATUS_CODES } from 'node:http';
import type { HealthReport } from '../model.js';
import { parseChallenge } from './www-authenticate.js';
import { headerValue, RefusedAddressError, type Answer } from './transport.js';

/** What the prober found, turned into a report: the status table of README "Health checks". */

const API_VERSION = 'registry/2.0';

/** The fields a verdict names; the rest of the report is filled in by `reporter`. */
export type ReportFields = Partial<Omit<HealthReport, 'url' | 'reason'>> &
  Pick<HealthReport, 'status' | 'detail' | 'probe_url'> & {
    /** The answer's status line, when one came: gives `reason`. */
    readonly status_text?: string;
  };

/**
 * Builds reports of one probe of `publicUrl` that started at `started`, timing them with `now`.
 * `reason` is the server's reason phrase, or the standard one for its status when it sent none
 * (HTTP/2 has no reason phrases; some servers send an empty one).
 */
export function reporter(
  publicUrl: string,
  started: number,
  now: () => number,
): (fields: ReportFields) => HealthReport {
  const checkedAt = new Date(started).toISOString();
  return (fields) => ({
    reachable: fields.reachable ?? false,
    status_code: fields.status_code ?? null,
    reason:
      fields.status_code == null ? null : fields.status_text || (STATUS_CODES[fields.status_code] ?? ''),
    url: publicUrl,
    probe_url: fields.probe_url,
    detail: fields.detail,
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
  });
}

/** The challenge of a `/v2/` answer, if any. */
export function challengeOf(answer: Answer): ReturnType<typeof parseChallenge> {
  return parseChallenge(headerValue(answer.headers['www-authenticate']));
}

/** The verdict on the final `/v2/` answer; `credentialsAccepted` is the login's outcome, if one was tried. */
export function classifyAnswer(
  answer: Answer,
  probeUrl: URL,
  credentialsAccepted: boolean | null | undefined,
  report: (fields: ReportFields) => HealthReport,
): HealthReport {
  const apiVersion = headerValue(answer.headers['docker-distribution-api-version']);
  const ociCompatible = apiVersion === API_VERSION;
  const challenge = challengeOf(answer);
  const auth = challenge
    ? {
        scheme: challenge.scheme,
        ...(challenge.params.realm !== undefined ? { realm: challenge.params.realm } : {}),
        ...(challenge.params.service !== undefined ? { service: challenge.params.service } : {}),
      }
    : null;
  const base = {
    probe_url: probeUrl.href,
    reachable: true,
    status_code: answer.status,
    status_text: answer.statusText,
    oci_compatible: ociCompatible,
    api_version: apiVersion ?? null,
    auth,
    ...(credentialsAccepted === undefined ? {} : { credentials_accepted: credentialsAccepted }),
  };
  if (answer.status === 200 && ociCompatible) {
    return report({ ...base, status: 'healthy', detail: 'the registry answered /v2/ with 200' });
  }
  if (answer.status === 200) {
    return report({
      ...base,
      status: 'unhealthy',
      detail: `answered 200 without "Docker-Distribution-API-Version: ${API_VERSION}": not an OCI registry`,
    });
  }
  if (answer.status === 401 && challenge) {
    return report({
      ...base,
      status: 'healthy',
      detail: `the registry is up and requires ${challenge.scheme} authentication`,
    });
  }
  return report({ ...base, status: 'unhealthy', detail: `/v2/ answered HTTP ${answer.status}` });
}

/** The verdict when no answer came: refused by the policy, timeout, DNS, connection or TLS failure. */
export function classifyFailure(
  error: unknown,
  url: string,
  timeoutMs: number,
  report: (fields: ReportFields) => HealthReport,
): HealthReport {
  const code = String((error as { code?: unknown }).code ?? '');
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof RefusedAddressError)
    return report({
      probe_url: url,
      status: 'refused',
      detail: `refused by the probe policy: ${message}`,
      error: message,
    });
  if (
    (error as Error).name === 'AbortError' ||
    (error as Error).name === 'TimeoutError' ||
    code === 'ABORT_ERR'
  ) {
    return report({
      probe_url: url,
      status: 'unreachable',
      detail: `no answer within ${timeoutMs} ms`,
      error: 'timeout',
    });
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return report({
      probe_url: url,
      status: 'unreachable',
      detail: 'the host name does not resolve',
      error: code,
    });
  if (code === 'ECONNREFUSED')
    return report({ probe_url: url, status: 'unreachable', detail: 'connection refused', error: code });
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code) || /certificate|TLS|SSL/i.test(message)) {
    return report({
      probe_url: url,
      status: 'unreachable',
      detail: `TLS handshake failed: ${message}`,
      error: code || 'TLS',
    });
  }
  return report({
    probe_url: url,
    status: 'unreachable',
    detail: `the connection failed: ${message}`,
    error: code || message,
  });
}
