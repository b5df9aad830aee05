import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import type { Logger } from '../../shared/logger.js';

const REQUEST_ID = /^[\w.:-]{1,128}$/;

declare module 'http' {
  interface IncomingMessage {
    /** The request id: the client's `X-Request-Id` when sane, else a new UUID. */
    id: string;
    /** A logger bound to this request's id. */
    log: Logger;
  }
}

/**
 * Picks the request's id (the client's `X-Request-Id` when sane, else a new UUID) and records it
 * on `req`; a request that already has one (the gate or the fast path ran first) keeps it.
 */
export function assignRequestId(req: IncomingMessage): string {
  if (typeof req.id === 'string') return req.id;
  const given = req.headers['x-request-id'];
  req.id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
  return req.id;
}

/** Writes one access-log line when the response is sent (when the level logs `info`). */
export function logAccess(req: IncomingMessage, res: ServerResponse, logger: Logger): void {
  if (!logger.isLevelEnabled('info')) return;
  const start = process.hrtime.bigint();
  res.once('finish', () => {
    logger.info(
      {
        reqId: req.id,
        req: { method: req.method, url: req.url },
        res: { statusCode: res.statusCode },
        responseTime: Number(process.hrtime.bigint() - start) / 1e6,
      },
      'request completed',
    );
  });
}

/**
 * Express middleware: request id (echoed as `X-Request-Id`), a logger bound to it, and the access
 * log. The child logger is only built when something logs, which keeps requests cheap (pino-http
 * builds one per request and cost ~25% of throughput here).
 */
export function requestContext(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const id = assignRequestId(req);
    res.setHeader('x-request-id', id); // the case the fast read path and the access gate write
    let child: Logger | undefined;
    Object.defineProperty(req, 'log', {
      get: () => (child ??= logger.child({ reqId: id })),
      configurable: true,
    });
    logAccess(req, res, logger);
    next();
  };
}
