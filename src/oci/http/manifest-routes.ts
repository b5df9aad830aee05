import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StoredManifest } from '../domain/content.js';
import { OciError } from '../errors.js';
import { MANIFEST_MEDIA_TYPES, baseMediaType } from '../domain/manifests.js';
import { parseReference } from '../domain/names.js';
import { header, send, type RouteContext } from './context.js';

/**
 * Content negotiation as CNCF Distribution does it: when `Accept` names manifest media types
 * and none of them (nor a wildcard) is the stored one, the manifest is not served (404
 * `MANIFEST_UNKNOWN`); without `Accept`, or with unrelated types only, it is served as stored.
 */
export function accepts(accept: string | undefined, mediaType: string): boolean {
  if (accept === undefined) return true;
  const types = accept.split(',').map((item) => baseMediaType(item) ?? '');
  if (types.includes(mediaType) || types.includes('*/*') || types.includes('application/*')) return true;
  return !types.some((type) => MANIFEST_MEDIA_TYPES.includes(type));
}

async function readLimited(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = header(req, 'content-length');
  if (declared !== undefined && Number(declared) > limit) {
    throw new OciError('ManifestTooLarge', undefined, { limit });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new OciError('ManifestTooLarge', undefined, { limit });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** `GET`/`HEAD /v2/<name>/manifests/<reference>`. */
export async function getManifest(context: RouteContext): Promise<void> {
  const { req, res, name, services } = context;
  sendManifest(
    req,
    res,
    await services.content.getManifest(name, parseReference(context.param, 'ManifestUnknown')),
  );
}

/** Answers a manifest GET/HEAD with `manifest` (after content negotiation); also used by the pull-through cache. */
export function sendManifest(
  req: IncomingMessage,
  res: ServerResponse,
  manifest: StoredManifest,
  extraHeaders: Record<string, string> = {},
): void {
  if (!accepts(header(req, 'accept'), manifest.mediaType)) {
    throw new OciError(
      'ManifestUnknown',
      `manifest is ${manifest.mediaType}, which the Accept header excludes`,
    );
  }
  const headers = {
    'Content-Type': manifest.mediaType,
    'Content-Length': manifest.content.length,
    'Docker-Content-Digest': manifest.digest.value,
    ETag: `"${manifest.digest.value}"`,
    ...extraHeaders,
  };
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : manifest.content);
}

/** `PUT /v2/<name>/manifests/<reference>`. */
export async function putManifest(context: RouteContext): Promise<void> {
  const { req, res, name, services } = context;
  const reference = parseReference(context.param, 'ManifestInvalid');
  const body = await readLimited(req, services.maxManifestBytes);
  const { digest, subject } = await services.content.putManifest(
    name,
    reference,
    body,
    header(req, 'content-type'),
  );
  send(res, 201, {
    Location: `/v2/${name}/manifests/${digest.value}`,
    'Docker-Content-Digest': digest.value,
    ...(subject === undefined ? {} : { 'OCI-Subject': subject.value }),
  });
}

/** `DELETE /v2/<name>/manifests/<reference>` (a digest deletes the manifest, a tag only the tag). */
export async function deleteManifest(context: RouteContext): Promise<void> {
  await context.services.content.deleteManifest(
    context.name,
    parseReference(context.param, 'ManifestUnknown'),
  );
  send(context.res, 202, {});
}
