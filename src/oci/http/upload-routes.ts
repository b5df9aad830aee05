import type { IncomingMessage } from 'node:http';
import { OciError } from '../errors.js';
import { parseDigest, validateName } from '../domain/names.js';
import type { ChunkRange } from '../domain/uploads.js';
import { header, send, type RouteContext } from './context.js';

const uploadLocation = (name: string, uploadId: string) => `/v2/${name}/blobs/uploads/${uploadId}`;
const blobLocation = (name: string, digest: string) => `/v2/${name}/blobs/${digest}`;
/** Distribution's convention: `0-<last byte>`, and `0-0` before the first byte. */
const rangeHeader = (offset: number) => `0-${Math.max(0, offset - 1)}`;

/** Parses `Content-Range: <start>-<end>` (the spec's form; `bytes ` prefix tolerated). */
export function parseContentRange(value: string | undefined): ChunkRange | undefined {
  if (value === undefined) return undefined;
  const match = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(value.trim());
  if (match === null) throw new OciError('BlobUploadInvalid', 'malformed Content-Range');
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start) throw new OciError('BlobUploadOutOfOrder', 'Content-Range end precedes its start');
  return { start, end };
}

function checkChunkLength(req: IncomingMessage, range: ChunkRange | undefined): void {
  const length = header(req, 'content-length');
  if (range !== undefined && length !== undefined && Number(length) !== range.end - range.start + 1) {
    throw new OciError('SizeInvalid', 'Content-Length does not match Content-Range');
  }
}

/** The request's Content-Length, when it sent one (the domain checks size limits against it). */
function declaredLength(req: IncomingMessage): number | undefined {
  const length = header(req, 'content-length');
  return length === undefined ? undefined : Number(length);
}

function hasBody(req: IncomingMessage): boolean {
  const length = header(req, 'content-length');
  return (length !== undefined && Number(length) > 0) || header(req, 'transfer-encoding') !== undefined;
}

/**
 * `POST /v2/<name>/blobs/uploads/`: cross-repository mount (`mount` + `from`), monolithic push
 * (`digest`), or the start of a session for `PATCH`/`PUT`.
 */
export async function startUpload(context: RouteContext): Promise<void> {
  const { req, res, name, query, services } = context;
  const mount = query.get('mount');
  const from = query.get('from');
  if (mount !== null && from !== null) {
    const digest = parseDigest(mount);
    if (await services.blobs.mount(name, validateName(from), digest)) {
      req.resume();
      send(res, 201, { Location: blobLocation(name, digest.value), 'Docker-Content-Digest': digest.value });
      return;
    }
    // Not mountable (unknown or not readable from `from`): the spec says fall back to an upload.
  }
  const digestParam = query.get('digest');
  if (digestParam !== null && mount === null) {
    const digest = parseDigest(digestParam);
    await services.uploads.putWhole(name, digest, req, declaredLength(req), req.socket.remoteAddress);
    send(res, 201, { Location: blobLocation(name, digest.value), 'Docker-Content-Digest': digest.value });
    return;
  }
  req.resume();
  const uploadId = await services.uploads.start(name, req.socket.remoteAddress);
  send(res, 202, {
    Location: uploadLocation(name, uploadId),
    Range: rangeHeader(0),
    'Docker-Upload-UUID': uploadId,
  });
}

/** `PATCH /v2/<name>/blobs/uploads/<uuid>`: appends a chunk (streamed or with `Content-Range`). */
export async function patchUpload(context: RouteContext): Promise<void> {
  const { req, res, name, param: uploadId, services } = context;
  const range = parseContentRange(header(req, 'content-range'));
  checkChunkLength(req, range);
  const offset = await services.uploads.append(name, uploadId, req, range, declaredLength(req));
  send(res, 202, {
    Location: uploadLocation(name, uploadId),
    Range: rangeHeader(offset),
    'Docker-Upload-UUID': uploadId,
  });
}

/** `PUT /v2/<name>/blobs/uploads/<uuid>?digest=`: optional last chunk, then verify and commit. */
export async function finishUpload(context: RouteContext): Promise<void> {
  const { req, res, name, param: uploadId, query, services } = context;
  const digestParam = query.get('digest');
  if (digestParam === null) throw new OciError('DigestInvalid', 'digest query parameter missing');
  const digest = parseDigest(digestParam);
  const range = parseContentRange(header(req, 'content-range'));
  checkChunkLength(req, range);
  const body = hasBody(req) ? req : undefined;
  if (body === undefined) req.resume();
  await services.uploads.finish(name, uploadId, digest, body, range, declaredLength(req));
  send(res, 201, { Location: blobLocation(name, digest.value), 'Docker-Content-Digest': digest.value });
}

/** `GET /v2/<name>/blobs/uploads/<uuid>`: progress of an upload. */
export async function uploadStatus(context: RouteContext): Promise<void> {
  const { res, name, param: uploadId, services } = context;
  const offset = await services.uploads.offset(name, uploadId);
  send(res, 204, {
    Location: uploadLocation(name, uploadId),
    Range: rangeHeader(offset),
    'Docker-Upload-UUID': uploadId,
  });
}

/** `DELETE /v2/<name>/blobs/uploads/<uuid>`: abandons an upload. */
export async function cancelUpload(context: RouteContext): Promise<void> {
  await context.services.uploads.cancel(context.name, context.param);
  send(context.res, 204, {});
}
