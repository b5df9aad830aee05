import express, { type RequestHandler } from 'express';
import { CatalogError, ValidationError } from '../errors.js';

/** Deepest nesting accepted in any request body (checked before any recursive validator runs). */
export const MAX_JSON_DEPTH = 32;

/**
 * JSON bodies only: a body with another media type is 415, a body larger than `limit` is 413,
 * malformed JSON is 400 (via the error handler). A request without a body gets `req.body`
 * undefined.
 */
export function jsonBody(limit: number): RequestHandler[] {
  return [
    (req, _res, next) => {
      const hasBody =
        req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
      if (hasBody && !req.is(['application/json', 'application/*+json'])) {
        return next(
          new CatalogError(
            'unsupported_media_type',
            `The request body must be application/json (got ${req.headers['content-type'] ?? 'no Content-Type'})`,
          ),
        );
      }
      next();
    },
    express.json({ limit, strict: false, type: ['application/json', 'application/*+json'] }),
    (req, _res, next) => {
      if (jsonDepth(req.body) > MAX_JSON_DEPTH) {
        return next(new ValidationError(`The request body nests deeper than ${MAX_JSON_DEPTH} levels`));
      }
      next();
    },
  ];
}

/** Nesting depth of a parsed JSON value, computed without recursion. */
export function jsonDepth(value: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (typeof current !== 'object' || current === null) continue;
    max = Math.max(max, depth + 1);
    if (max > MAX_JSON_DEPTH) return max;
    for (const child of Object.values(current)) stack.push([child, depth + 1]);
  }
  return max;
}
