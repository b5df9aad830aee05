import { pino, type Logger } from 'pino';
import type { LogLevel } from './config/env.js';
import { redactUrl } from './redact-url.js';

export type { Logger };

/**
 * Structured JSON logs on stdout. Secrets are redacted by path wherever they could appear, and
 * every URL logged (`url`, `req.url`) loses its secret query values (redact-url.ts).
 */
export function createLogger(name: string, level: LogLevel): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', '*.password', '*.token', '*.credentials'],
      censor: '*****',
    },
    serializers: {
      url: redactUrl,
      req: (req: unknown) =>
        typeof req === 'object' && req !== null && 'url' in req
          ? { ...req, url: redactUrl((req as { url: unknown }).url) }
          : req,
    },
  });
}
