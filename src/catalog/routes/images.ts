import type { Request, Response, RequestHandler } from 'express';
import { parseHealthStatuses } from '../domain/health-service.js';
import { parseImagePage, type ImageService } from '../domain/images.js';
import type { FastAnswer, ParsedQuery } from '../http/route-table.js';
import { booleanParam } from './registries.js';
import type { CatalogServices } from './services.js';

/** The image index routes (DESIGN.md section 8). Registered only when the catalog has an image index. */

export const queryImages = ({ images, health }: CatalogServices): RequestHandler =>
  async function queryImages(req, res) {
    const page = parseImagePage(req.query);
    const statuses = parseHealthStatuses(req.query.health);
    const onlyIds = statuses && health ? await health.idsWithStatus(statuses) : statuses && [];
    const { items, total } = await images!.query(req.body, page, onlyIds);
    sendPage(req, res, items, total, page);
  };

export const registryImages = ({ images }: CatalogServices): RequestHandler =>
  async function registryImages(req, res) {
    const page = parseImagePage(req.query);
    const { items, total } = await images!.ofRegistry(String(req.params.registry_id), page);
    sendPage(req, res, items, total, page);
  };

export const resolveImage = ({ images }: CatalogServices): RequestHandler =>
  async function resolveImage(req, res) {
    res.json(await resolution(images!, req.query));
  };

/**
 * The same answer before Express (front.ts). A refusal (bad parameters, nobody holds the image)
 * rejects, and Express answers it in the error envelope.
 */
export const resolveImageFast =
  ({ images }: CatalogServices) =>
  async (_params: unknown, query: Readonly<ParsedQuery>): Promise<FastAnswer> => ({
    headers: {},
    payload: JSON.stringify(await resolution(images!, query)),
  });

async function resolution(images: ImageService, query: Readonly<Record<string, unknown>>) {
  const data = await images.resolve({
    reference: query.reference,
    digest: query.digest,
    platform: query.platform,
    signed: booleanParam(query, 'signed'),
  });
  return { success: true, data };
}

export const crawlRegistry = ({ images }: CatalogServices): RequestHandler =>
  async function crawlRegistry(req, res) {
    res.json({ success: true, data: await images!.crawlNow(String(req.params.registry_id)) });
  };

export const lastCrawl = ({ images }: CatalogServices): RequestHandler =>
  async function lastCrawl(req, res) {
    res.json({ success: true, data: await images!.lastReport(String(req.params.registry_id)) });
  };

/** `X-Total-Count`, and `Link: rel="next"` while more remain (as `POST /container_registries`). */
function sendPage(
  req: Request,
  res: Response,
  items: unknown[],
  total: number,
  page: { skip: number; limit: number },
): void {
  res.set('X-Total-Count', String(total));
  if (page.skip + items.length < total) {
    const next = new URLSearchParams();
    for (const [key, value] of Object.entries(req.query)) if (typeof value === 'string') next.set(key, value);
    next.set('skip', String(page.skip + page.limit));
    next.set('limit', String(page.limit));
    res.set('Link', `<${req.baseUrl}${req.path}?${next.toString()}>; rel="next"`);
  }
  res.json({ success: true, data: items });
}
