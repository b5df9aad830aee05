import type { RequestHandler, Response } from 'express';
import type { ContainerRegistry, StoredRegistry } from '../model.js';
import { ValidationError } from '../errors.js';
import type { FastAnswer, ParsedQuery } from '../http/route-table.js';
import { toPublic } from '../domain/credentials.js';
import { ContentCache } from '../domain/content-cache.js';
import { etagOf } from '../domain/etags.js';
import { isPaged, parsePage } from '../domain/parameters.js';
import { parseHealthStatuses } from '../domain/health-service.js';
import type { CatalogServices } from './services.js';
import { drained } from '../../shared/drained.js';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

/** The AIOS routes. Thin: parse the HTTP parts, call one service method, answer in the envelope. */

export const createRegistry = ({ registries }: CatalogServices): RequestHandler =>
  async function createRegistry(req, res) {
    const stored = await registries.create(req.body, { verify: booleanParam(req.query, 'verify') });
    const id = stored.document.container_registry_id;
    res
      .status(201)
      .location(`/container_registry/${id}`)
      .set('ETag', etagOf(stored))
      .json({
        success: true,
        data: { message: 'Container registry created', id, container_registry: toPublic(stored.document) },
      });
  };

export const readRegistry = ({ registries }: CatalogServices): RequestHandler =>
  async function readRegistry(req, res) {
    const { etag, body } = readResponse(await registries.get(String(req.params.registry_id)));
    res.set('ETag', etag);
    if (req.headers['if-none-match']?.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)) {
      res.status(304).end();
      return;
    }
    res.json(body);
  };

/**
 * Bounds of the fast read's cache of answers: 32 Mi characters in all (~2x the text of the
 * documents held), documents over 64 Ki characters not cached.
 */
const FAST_READ_CACHE = { totalChars: 32 << 20, entryChars: 64 << 10 };

/**
 * The same read for the fast path (front.ts): the same body and entity tag as `readRegistry`.
 * The answer is cached under the stored text and version (domain/content-cache.ts): a read of an
 * unchanged document costs the store's lookup and no parse, hash or serialisation (issue 12).
 */
export const readRegistryFast = ({ registries }: CatalogServices) => {
  const answers = new ContentCache<FastAnswer>(FAST_READ_CACHE);
  return async (
    params: Readonly<Record<string, string>>,
    query: Readonly<ParsedQuery>,
  ): Promise<FastAnswer> => {
    // Anything in the query is Express's to answer (as before the fast path existed).
    if (Object.keys(query).length > 0) throw new Error('a query: answered by Express');
    const id = params.registry_id!;
    const stored = await registries.getText(id);
    const cached = answers.get(id, stored);
    if (cached) return cached;
    const { etag, body } = readResponse(registries.decode(stored));
    const payload = JSON.stringify(body);
    return answers.set(id, stored, { headers: { etag }, payload }, payload.length);
  };
};

export const updateRegistry = ({ registries }: CatalogServices): RequestHandler =>
  async function updateRegistry(req, res) {
    const stored = await registries.update(String(req.params.registry_id), req.body, {
      ifMatch: req.headers['if-match'],
    });
    const etag = etagOf(stored);
    // The entity tag and the answer each serialise the document (up to 1 MB): other requests
    // get their turn in between (issue 10: no update holds the event loop in one piece).
    await yieldToEventLoop();
    res.set('ETag', etag).json({
      success: true,
      data: { message: 'Container registry updated', container_registry: toPublic(stored.document) },
    });
  };

export const deleteRegistry = ({
  registries,
  health,
  images,
  selfRegistration,
}: CatalogServices): RequestHandler =>
  async function deleteRegistry(req, res) {
    const id = String(req.params.registry_id);
    await registries.delete(id, { ifMatch: req.headers['if-match'] });
    await health?.forget(id.toLowerCase());
    await images?.forget(id.toLowerCase());
    await selfRegistration?.heartbeats.forget(id.toLowerCase());
    res.json({ success: true, data: { message: 'Container registry deleted' } });
  };

export const queryRegistries = ({ registries, health }: CatalogServices): RequestHandler =>
  async function queryRegistries(req, res) {
    const page = parsePage(req.query);
    const statuses = parseHealthStatuses(req.query.health);
    const onlyIds = statuses && health ? await health.idsWithStatus(statuses) : undefined;
    if (!isPaged(req.query)) {
      const { items, total } = await registries.queryAll(req.body, page.sort, onlyIds);
      res.set('X-Total-Count', String(total));
      await sendEnvelopeStreamed(res, items);
      return;
    }
    const { items, total } = await registries.query(req.body, page, onlyIds);
    res.set('X-Total-Count', String(total));
    if (page.skip + items.length < total) {
      const next = new URLSearchParams();
      for (const [key, value] of Object.entries(req.query))
        if (typeof value === 'string') next.set(key, value);
      next.set('skip', String(page.skip + page.limit));
      next.set('limit', String(page.limit));
      res.set('Link', `<${req.baseUrl}${req.path}?${next.toString()}>; rel="next"`);
    }
    res.json({ success: true, data: items.map(toPublic) });
  };

/** Bytes gathered before a write of a streamed answer. */
const STREAM_CHUNK = 64 * 1024;

/**
 * `{"success":true,"data":[...]}` written as the documents come, honouring back-pressure, so a
 * large answer is never held whole. An error before the first byte is the usual error envelope;
 * after it, the connection is cut (the client sees a truncated body, never a short valid one).
 */
async function sendEnvelopeStreamed(res: Response, items: AsyncIterable<ContainerRegistry>): Promise<void> {
  let chunk = '{"success":true,"data":[';
  let first = true;
  try {
    for await (const item of items) {
      chunk += (first ? '' : ',') + JSON.stringify(toPublic(item));
      first = false;
      if (chunk.length < STREAM_CHUNK) continue;
      if (!res.headersSent) res.status(200).type('application/json');
      const more = res.write(chunk);
      chunk = '';
      if (!more) await drained(res);
      if (res.destroyed) return; // the client went away: stop reading (closes the cursor)
    }
  } catch (error) {
    if (!res.headersSent) throw error;
    res.destroy(error instanceof Error ? error : new Error(String(error)));
    return;
  }
  if (!res.headersSent) res.status(200).type('application/json');
  res.end(`${chunk}]}`);
}

/** What a read answers: the entity tag and the envelope with the public document. */
function readResponse(stored: StoredRegistry): {
  etag: string;
  body: { success: true; data: ContainerRegistry };
} {
  return { etag: etagOf(stored), body: { success: true, data: toPublic(stored.document) } };
}

/** `?name=true|1|` (bare) or `false|0`; absent is false. */
export function booleanParam(query: Readonly<Record<string, unknown>>, name: string): boolean {
  const value = query[name];
  if (value === undefined || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1' || value === '') return true;
  throw ValidationError.of([{ pointer: `/${name}`, message: 'must be true or false' }], `Invalid ${name}`);
}
