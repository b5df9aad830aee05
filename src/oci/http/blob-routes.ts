import type { ServerResponse } from 'node:http';
import type { ReadableFile } from '../storage/driver.js';
import { OciError } from '../errors.js';
import { parseDigest } from '../domain/names.js';
import { header, send, type RouteContext } from './context.js';

/** Parses a single `bytes=` range against `size`; `undefined` means serve the whole blob. */
export function parseRange(
  value: string | undefined,
  size: number,
): { start: number; end: number } | undefined {
  if (value === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (match === null) return undefined; // several ranges or another unit: RFC 9110 lets us ignore it
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  let start: number;
  let end: number;
  if (first === '') {
    start = Math.max(0, size - Number(last));
    end = size - 1;
  } else {
    start = Number(first);
    end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  }
  if (start >= size || start > end) {
    throw new OciError('RangeNotSatisfiable', undefined, { size });
  }
  return { start, end };
}

/**
 * The request's `Range` against a blob of `size` bytes (`parseRange`); for an unsatisfiable one
 * the 416 also carries the unsatisfied-range `Content-Range` (the size), as RFC 9110 asks.
 */
export function requestedRange(
  context: Pick<RouteContext, 'req' | 'res'>,
  size: number,
): { start: number; end: number } | undefined {
  try {
    return parseRange(header(context.req, 'range'), size);
  } catch (error) {
    context.res.setHeader('Content-Range', `bytes */${size}`);
    throw error;
  }
}

/** Largest read per turn: big enough to amortize the thread-pool hop, small enough to stay flat. */
const SEND_CHUNK = 2 * 1024 * 1024;

/**
 * Sends `[start, end]` of an open file through three reused buffers: up to two chunks queued on
 * the socket while the next one is read from disk. A buffer is reused only after the socket's
 * write callback says the kernel has its bytes, so memory stays bounded (3 x SEND_CHUNK) whatever
 * the blob size, and there is no allocation per chunk (piping a ReadStream was half as fast).
 */
async function sendRange(
  res: ServerResponse,
  file: ReadableFile,
  start: number,
  end: number,
): Promise<number> {
  const length = Math.min(SEND_CHUNK, end - start + 1);
  const free = Array.from({ length: end - start + 1 > length ? 3 : 1 }, () => Buffer.allocUnsafe(length));
  let wake: (() => void) | undefined;
  let closed = false;
  const onClose = () => {
    closed = true;
    wake?.();
  };
  res.once('close', onClose);
  let position = start;
  try {
    while (position <= end) {
      while (free.length === 0 && !closed) await new Promise<void>((resolve) => (wake = resolve));
      if (closed) break;
      const buffer = free.pop()!;
      const bytes = await file.read(
        buffer.subarray(0, Math.min(buffer.length, end - position + 1)),
        position,
      );
      if (bytes === 0) throw new Error('blob shorter than its size');
      position += bytes;
      res.write(buffer.subarray(0, bytes), () => {
        free.push(buffer);
        wake?.();
      });
    }
  } finally {
    res.off('close', onClose);
  }
  if (!closed) res.end();
  return position - start;
}

/** Headers of every blob answer (also the pull-through cache's). */
export function blobHeaders(digest: string): Record<string, string | number> {
  return {
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': digest,
    'Accept-Ranges': 'bytes',
    ETag: `"${digest}"`,
    'Cache-Control': 'max-age=31536000',
  };
}

/** `GET`/`HEAD /v2/<name>/blobs/<digest>`, with single-range support. */
export async function getBlob(context: RouteContext): Promise<void> {
  const { req, res, name, services } = context;
  const digest = parseDigest(context.param);
  const file = await services.blobs.open(name, digest);
  try {
    const size = file.size;
    const headers = blobHeaders(digest.value);
    const range = requestedRange(context, size);
    const status = range === undefined ? 200 : 206;
    const start = range?.start ?? 0;
    const end = range?.end ?? size - 1;
    if (range !== undefined) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    headers['Content-Length'] = end - start + 1;
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    try {
      services.bytesSent(await sendRange(res, file, start, end));
    } catch (error) {
      // Headers are out: the only honest signal left is to cut the connection.
      context.logger.warn({ err: error, digest: digest.value }, 'blob download failed');
      res.destroy();
    }
  } finally {
    await file.close();
  }
}

/** `DELETE /v2/<name>/blobs/<digest>`: unlinks the blob from this repository. */
export async function deleteBlob(context: RouteContext): Promise<void> {
  const digest = parseDigest(context.param);
  await context.services.blobs.unlink(context.name, digest);
  send(context.res, 202, {});
}
