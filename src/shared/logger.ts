import { pino, type Logger } from 'pino';
import type { LogLevel } from './config/env.js';

export type { Logger };

/** Structured JSON logs on stdout. Secrets are redacted by path wherever they could appear. */
export function createLogger(name: string, level: LogLevel): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', '*.password', '*.token', '*.credentials'],
      censor: '*****',
    },
  });
}
