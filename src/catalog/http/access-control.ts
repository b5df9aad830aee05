import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { Logger } from '../../shared/logger.js';
import { requirementOf, type AccessPolicy } from '../access/policy.js';
import type { ErrorCode } from '../errors.js';
import type { HttpMetrics } from './metrics.js';
import { problemBody } from './problem.js';
import { assignRequestId, logAccess } from './request-context.js';

export interface AccessControlOptions {
  readonly policy: AccessPolicy;
  /** Requests per second per client; 0: unlimited. */
  readonly rateLimitPerSecond: number;
  /** On-demand health checks per minute per client; 0: unlimited. */
  readonly healthCheckRateLimitPerMinute: number;
  /** Origins allowed by CORS (see app.ts): refusals carry the same CORS headers, so a browser can read them. */
  readonly corsOrigins: readonly string[];
  readonly securityHeaders: Readonly<Record<string, string>>;
  readonly metrics: HttpMetrics;
  readonly logger: Logger;
}

const REALM = 'Bearer realm="aios-registry-catalog"';

/**
 * The gate in front of every route (the fast read path and Express alike): bearer-token access
 * control, then per-client rate limits. A client is its token's name, or its address when it
 * sends no token. Refusals are answered here in the error envelope.
 */
export function withAccessControl(next: RequestListener, options: AccessControlOptions): RequestListener {
  const perSecond = limiter(options.rateLimitPerSecond, 1);
  const healthChecks = limiter(options.healthCheckRateLimitPerMinute, 60);

  return (req, res) => {
    const requirement = requirementOf(req.method ?? 'GET', req.url ?? '/');
    const decision = options.policy.decide(requirement, req.headers.authorization);
    if (!decision.allowed) {
      const challenge = req.headers.authorization === undefined ? REALM : `${REALM}, error="invalid_token"`;
      const extra: Record<string, string> =
        decision.code === 'unauthorized' ? { 'www-authenticate': challenge } : {};
      // Refusals count against the address's budget too: guessing tokens is rate limited.
      if (!perSecond) return refuse(req, res, options, decision.code, decision.message, extra);
      perSecond.consume(`address:${req.socket.remoteAddress}`).then(
        () => refuse(req, res, options, decision.code, decision.message, extra),
        (rejection: unknown) => limited(req, res, options, rejection, 'requests'),
      );
      return;
    }
    if (requirement.role === 'public') return next(req, res);
    const client =
      decision.client === undefined ? `address:${req.socket.remoteAddress}` : `token:${decision.client}`;
    const limits = [perSecond, requirement.probe ? healthChecks : undefined].filter((l) => l !== undefined);
    if (limits.length === 0) return next(req, res);
    Promise.all(limits.map((l) => l.consume(client))).then(
      () => next(req, res),
      (rejection: unknown) =>
        limited(req, res, options, rejection, requirement.probe ? 'health checks' : 'requests'),
    );
  };
}

/** 429 with `Retry-After` for a rate limiter's rejection (503 if the limiter itself failed). */
function limited(
  req: IncomingMessage,
  res: ServerResponse,
  options: AccessControlOptions,
  rejection: unknown,
  what: string,
): void {
  if (!(rejection instanceof RateLimiterRes)) {
    options.logger.error({ err: rejection }, 'rate limiter failed');
    return refuse(req, res, options, 'unavailable', 'The server cannot take this request now', {});
  }
  const retryAfter = String(Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)));
  refuse(req, res, options, 'too_many_requests', `Too many ${what}; retry in ${retryAfter} s`, {
    'retry-after': retryAfter,
  });
}

function corsHeaders(origin: string | undefined, allowed: readonly string[]): Record<string, string> {
  if (origin === undefined) return {};
  const anyOrigin = allowed.includes('*');
  if (!anyOrigin && !allowed.includes(origin)) return {};
  return {
    'access-control-allow-origin': anyOrigin ? '*' : origin,
    'access-control-expose-headers': 'WWW-Authenticate, Retry-After, X-Request-Id',
    ...(anyOrigin ? {} : { vary: 'Origin' }),
  };
}

function limiter(points: number, seconds: number): RateLimiterMemory | undefined {
  return points > 0 ? new RateLimiterMemory({ points, duration: seconds }) : undefined;
}

function refuse(
  req: IncomingMessage,
  res: ServerResponse,
  options: AccessControlOptions,
  code: ErrorCode,
  message: string,
  extra: Record<string, string>,
): void {
  const start = performance.now();
  const id = assignRequestId(req);
  logAccess(req, res, options.logger);
  const instance = (req.url ?? '/').split('?', 1)[0]!;
  const { status, body } = problemBody(code, message, instance, id);
  res.writeHead(status, {
    ...options.securityHeaders,
    ...corsHeaders(req.headers.origin, options.corsOrigins),
    ...extra,
    'x-request-id': id,
    'content-type': 'application/problem+json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  // A request body nobody reads would stall the keep-alive connection: let it drain away.
  req.resume();
  options.metrics.record(req.method ?? 'GET', '(access control)', status, (performance.now() - start) / 1000);
}
