import type { IncomingMessage } from 'node:http';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { Logger } from '../../shared/logger.js';
import type { AccessPolicy, Requirement } from '../access/policy.js';
import type { ErrorCode } from '../errors.js';
import type { Principal } from '../access/principal.js';

export interface AccessControlOptions {
  readonly policy: AccessPolicy;
  /** Requests per second per client; 0: unlimited. */
  readonly rateLimitPerSecond: number;
  /** On-demand health checks per minute per client; 0: unlimited. */
  readonly healthCheckRateLimitPerMinute: number;
  readonly logger: Logger;
}

/** Why a request is turned away; the front door writes it in the error envelope. */
export interface Refusal {
  readonly code: ErrorCode;
  readonly message: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** Calls `admitted` or `refused` once; synchronously when no rate limit applies (the common read). */
export type Gate = (
  req: IncomingMessage,
  requirement: Requirement,
  admitted: () => void,
  refused: (refusal: Refusal) => void,
) => void;

const REALM = 'Bearer realm="aios-registry-catalog"';

declare module 'http' {
  interface IncomingMessage {
    /** The token that admitted the request; undefined when anonymous or access control is off. */
    principal?: Principal;
  }
}

/**
 * The gate in front of every route (the fast read path and Express alike): bearer-token access
 * control, then per-client rate limits. A client is its token's name, or its address when it
 * sends no token.
 */
export function accessGate(options: AccessControlOptions): Gate {
  const perSecond = limiter(options.rateLimitPerSecond, 1);
  const healthChecks = limiter(options.healthCheckRateLimitPerMinute, 60);

  return (req, requirement, admitted, refused) => {
    const decision = options.policy.decide(requirement, req.headers.authorization);
    if (!decision.allowed) {
      const challenge = req.headers.authorization === undefined ? REALM : `${REALM}, error="invalid_token"`;
      const headers: Record<string, string> =
        decision.code === 'unauthorized' ? { 'www-authenticate': challenge } : {};
      const refusal: Refusal = { code: decision.code, message: decision.message, headers };
      // Refusals count against the address's budget too: guessing tokens is rate limited.
      if (!perSecond) return refused(refusal);
      perSecond.consume(`address:${req.socket.remoteAddress}`).then(
        () => refused(refusal),
        (rejection: unknown) => refused(limited(options, rejection, 'requests')),
      );
      return;
    }
    if (requirement.role === 'public') return admitted();
    // Who is asking, for routes that bind an entry to a token (self-registration).
    req.principal =
      decision.client === undefined ? undefined : { name: decision.client, role: decision.role! };
    const client =
      decision.client === undefined ? `address:${req.socket.remoteAddress}` : `token:${decision.client}`;
    const what = requirement.probe ? 'health checks' : 'requests';
    const onLimited = (rejection: unknown) => refused(limited(options, rejection, what));
    const probeLimit = requirement.probe ? healthChecks : undefined;
    // The common read has one limiter: consumed without building arrays or a Promise.all.
    if (!probeLimit) {
      if (!perSecond) return admitted();
      perSecond.consume(client).then(() => admitted(), onLimited);
      return;
    }
    const limits = perSecond ? [perSecond, probeLimit] : [probeLimit];
    Promise.all(limits.map((l) => l.consume(client))).then(() => admitted(), onLimited);
  };
}

/** 429 with `Retry-After` for a rate limiter's rejection (503 if the limiter itself failed). */
function limited(options: AccessControlOptions, rejection: unknown, what: string): Refusal {
  if (!(rejection instanceof RateLimiterRes)) {
    options.logger.error({ err: rejection }, 'rate limiter failed');
    return { code: 'unavailable', message: 'The server cannot take this request now', headers: {} };
  }
  const retryAfter = String(Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)));
  return {
    code: 'too_many_requests',
    message: `Too many ${what}; retry in ${retryAfter} s`,
    headers: { 'retry-after': retryAfter },
  };
}

function limiter(points: number, seconds: number): RateLimiterMemory | undefined {
  return points > 0 ? new RateLimiterMemory({ points, duration: seconds }) : undefined;
}
