import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Blobs } from '../domain/blobs.js';
import type { Content } from '../domain/content.js';
import type { Uploads } from '../domain/uploads.js';
import type { Logger } from '../../shared/logger.js';

/** What a route handler gets: the parsed request and the registry services. */
export interface RouteContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** Validated repository name (routes under `/v2/<name>/`). */
  readonly name: string;
  /** The path parameter after the route keyword (reference, digest, upload id), URL-decoded. */
  readonly param: string;
  readonly query: URLSearchParams;
  readonly services: OciServices;
  readonly logger: Logger;
}

export interface OciServices {
  readonly blobs: Blobs;
  readonly uploads: Uploads;
  readonly content: Content;
  /** Largest manifest accepted by PUT, in bytes. */
  readonly maxManifestBytes: number;
  /** Counts bytes served from blobs (metrics). */
  readonly bytesSent: (count: number) => void;
}

export type RouteHandler = (context: RouteContext) => Promise<void>;

/** Sends a complete response; JSON bodies get `Content-Length` and `Content-Type`. */
export function send(
  res: ServerResponse,
  status: number,
  headers: Record<string, string | number>,
  body?: Buffer | string | object,
): void {
  let payload: Buffer | string | undefined;
  if (body === undefined || Buffer.isBuffer(body) || typeof body === 'string') payload = body;
  else {
    payload = JSON.stringify(body);
    headers = { 'Content-Type': 'application/json; charset=utf-8', ...headers };
  }
  const length = payload === undefined ? 0 : Buffer.byteLength(payload);
  res.writeHead(status, { 'Content-Length': length, ...headers });
  res.end(payload);
}

/** The request's single value of a header. */
export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
