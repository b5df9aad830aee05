import type { RequestHandler } from 'express';
import { parseId, parsePage } from '../domain/parameters.js';
import { booleanParam } from './registries.js';
import type { CatalogServices } from './services.js';

/**
 * Health routes: the AIOS check, a registry's history, and the last status of all of them.
 * Registered only when the catalog has health checking (`available` in table.ts).
 */

export const checkHealth = ({ health }: CatalogServices): RequestHandler =>
  async function checkHealth(req, res) {
    const id = String(req.params.registry_id);
    parseId(id);
    const report = booleanParam(req.query, 'cached') ? await health!.cached(id) : await health!.check(id);
    res.json({ success: true, data: report });
  };

export const healthHistory = ({ health }: CatalogServices): RequestHandler =>
  async function healthHistory(req, res) {
    // `?limit=`: the newest reports only (the dashboard's sparklines need a few, not the whole history).
    const limit = req.query.limit === undefined ? undefined : parsePage({ limit: req.query.limit }).limit;
    const record = await health!.record(String(req.params.registry_id));
    const history = limit === undefined ? record.history : record.history.slice(0, limit);
    res.json({
      success: true,
      data: { container_registry_id: record.registryId, last: record.last, history },
    });
  };

export const healthStatuses = ({ health }: CatalogServices): RequestHandler =>
  async function healthStatuses(req, res) {
    const { limit, skip } = parsePage({ limit: req.query.limit, skip: req.query.skip });
    const all = [...(await health!.statuses())]
      .map(([id, { status, checkedAt }]) => ({ container_registry_id: id, status, checked_at: checkedAt }))
      .sort((a, b) => (a.container_registry_id < b.container_registry_id ? -1 : 1));
    res.set('X-Total-Count', String(all.length));
    res.json({ success: true, data: all.slice(skip, skip + limit) });
  };
