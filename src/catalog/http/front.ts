import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import cors from 'cors';
import type { Express, RequestHandler } from 'express';
import type { Logger } from '../../shared/logger.js';
import type { Gate, Refusal } from './access-control.js';
import type { HttpMetrics } from './metrics.js';
import { problemBody } from './problem.js';
import { assignRequestId, logAccess, requestContext } from './request-context.js';
import type { FastAnswer, RouteIndex } from './route-table.js';
import { securityHeaders } from './security-headers.js';

export interface FrontDeps<S> {
  readonly routes: RouteIndex<S>;
  readonly services: S;
  readonly gate: Gate;
  readonly logger: Logger;
  readonly metrics: HttpMetrics;
  /** Origins allowed to call from a browser; empty: CORS off. */
  readonly corsOrigins: readonly string[];
}

/** The catalog's front door (see `createFront`). */
export interface Front {
  /** Express middleware run before every Express route: the same id, headers, CORS, log and metrics. */
  readonly prelude: RequestHandler[];
  /** What a server listens with: route match, the gate, then the fast read path or `app`. */
  listener(app: Express): RequestListener;
}

const CORS_REQUEST_HEADERS = ['Authorization', 'Content-Type', 'If-Match', 'If-None-Match', 'X-Request-Id'];
const CORS_EXPOSED_HEADERS = ['ETag', 'Location', 'Link', 'X-Total-Count', 'X-Request-Id', 'Retry-After'];

/**
 * One front door for the three ways a request is answered: refused by the gate, answered by the
 * fast read path, or handed to Express. Each gets the same request id, security headers, CORS
 * headers, access-log line, metrics series and error envelope, from this one place.
 *
 * The fast read path exists because `GET /container_registry/<id>` is the catalog's hottest
 * request and Express's own routing costs more than its work (bench/README.md: Express alone
 * reaches ~0.2x of bare node:http). A route declaring `fastRead` is answered here, before
 * Express, when the request is a plain GET (no conditional or cross-origin headers) and the read
 * succeeds; anything else goes to Express, which answers it as usual. `GET /resolve_image`
 * (issue 14: p50 < 5 ms at 16 connections) is the other one: behind Express the framework cost
 * more CPU than the resolve itself.
 */
export function createFront<S>(deps: FrontDeps<S>): Front {
  const headers = securityHeaders();
  const allowed = deps.corsOrigins;
  const prelude: RequestHandler[] = [
    requestContext(deps.logger),
    deps.metrics.middleware,
    (_req, res, next) => {
      res.set(headers);
      next();
    },
  ];
  if (allowed.length > 0) {
    prelude.push(
      cors({
        origin: allowed.includes('*') ? '*' : [...allowed],
        allowedHeaders: CORS_REQUEST_HEADERS,
        exposedHeaders: CORS_EXPOSED_HEADERS,
        maxAge: 600,
      }),
    );
  }
  /** The full header set of each fast answer (the same answer object comes back from a cache). */
  const preparedHeaders = new WeakMap<FastAnswer, Readonly<Record<string, string>>>();
  const fastReads = new Map(
    deps.routes.routes.flatMap((route) =>
      route.fastRead && (route.available?.(deps.services) ?? true)
        ? [[route, route.fastRead(deps.services)] as const]
        : [],
    ),
  );

  /** Refusals carry the CORS headers when the origin is allowed, so a browser can read them. */
  function corsHeaders(origin: string | undefined): Record<string, string> {
    if (origin === undefined) return {};
    const anyOrigin = allowed.includes('*');
    if (!anyOrigin && !allowed.includes(origin)) return {};
    return {
      'access-control-allow-origin': anyOrigin ? '*' : origin,
      'access-control-expose-headers': 'WWW-Authenticate, Retry-After, X-Request-Id',
      ...(anyOrigin ? {} : { vary: 'Origin' }),
    };
  }

  function refuse(req: IncomingMessage, res: ServerResponse, refusal: Refusal): void {
    const start = performance.now();
    const id = assignRequestId(req);
    logAccess(req, res, deps.logger);
    const instance = (req.url ?? '/').split('?', 1)[0]!;
    const { status, body } = problemBody(refusal.code, refusal.message, instance, id);
    res.writeHead(status, {
      ...headers,
      ...corsHeaders(req.headers.origin),
      ...refusal.headers,
      'x-request-id': id,
      'content-type': 'application/problem+json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    // A request body nobody reads would stall the keep-alive connection: let it drain away.
    req.resume();
    deps.metrics.record(req.method ?? 'GET', '(access control)', status, (performance.now() - start) / 1000);
  }

  function answerFast(
    req: IncomingMessage,
    res: ServerResponse,
    route: string,
    answer: FastAnswer,
    start: number,
  ): void {
    const id = assignRequestId(req);
    logAccess(req, res, deps.logger);
    let prepared = preparedHeaders.get(answer);
    if (!prepared) {
      prepared = {
        ...headers,
        'content-type': 'application/json; charset=utf-8',
        'content-length': String(Buffer.byteLength(answer.payload)),
        ...answer.headers,
      };
      preparedHeaders.set(answer, prepared);
    }
    // All headers in writeHead: a header set earlier with setHeader sends Node down its slow
    // path (headers merged one by one, then written apart from the body), half the throughput.
    res.writeHead(200, { ...prepared, 'x-request-id': id });
    res.end(answer.payload);
    // Handed to the socket: recorded now rather than on 'finish', one listener less per request.
    deps.metrics.record('GET', route, 200, (performance.now() - start) / 1000);
  }

  function isPlainRead(req: IncomingMessage): boolean {
    // Cross-origin requests go to Express, whose CORS middleware answers them.
    return (
      req.method === 'GET' && req.headers['if-none-match'] === undefined && req.headers.origin === undefined
    );
  }

  return {
    prelude,
    listener(app) {
      return (req, res) => {
        const method = req.method ?? 'GET';
        const match = deps.routes.match(method, req.url ?? '/');
        deps.gate(
          req,
          deps.routes.requirement(method, match),
          () => {
            const fastRead = match && fastReads.get(match.route);
            if (!fastRead || !isPlainRead(req)) return void app(req, res);
            const start = performance.now();
            fastRead(match.params, match.query === '' ? {} : parseQuery(match.query)).then(
              (answer) => answerFast(req, res, match.route.path, answer, start),
              () => app(req, res),
            );
          },
          (refusal) => refuse(req, res, refusal),
        );
      };
    },
  };
}
