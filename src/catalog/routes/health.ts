import { Router, type Request } from 'express';
import { ValidationError } from '../errors.js';
import type { HealthService } from '../domain/health-service.js';
import { parseId, parsePage } from '../domain/registries.js';
import { methodNotAllowed } from '../http/problem.js';

/** Health routes: the AIOS check, a registry's history, and the last status of all of them. */
export function healthRoutes(health: HealthService): Router {
  const router = Router();

  router.get('/check_container_health/:registry_id', async (req, res) => {
    const report = cachedParam(req)
      ? await health.cached(req.params.registry_id)
      : await health.check(req.params.registry_id);
    res.json({ success: true, data: report });
  });

  router.get('/container_registry/:registry_id/health', async (req, res) => {
    const record = await health.record(req.params.registry_id);
    res.json({
      success: true,
      data: { container_registry_id: record.registryId, last: record.last, history: record.history },
    });
  });

  router.get('/container_registries/health', async (req, res) => {
    const { limit, skip } = parsePage({ limit: req.query.limit, skip: req.query.skip });
    const all = [...(await health.statuses())]
      .map(([id, { status, checkedAt }]) => ({ container_registry_id: id, status, checked_at: checkedAt }))
      .sort((a, b) => (a.container_registry_id < b.container_registry_id ? -1 : 1));
    res.set('X-Total-Count', String(all.length));
    res.json({ success: true, data: all.slice(skip, skip + limit) });
  });

  router.all('/check_container_health/:registry_id', methodNotAllowed(['GET', 'HEAD']));
  router.all('/container_registry/:registry_id/health', methodNotAllowed(['GET', 'HEAD']));
  router.all('/container_registries/health', methodNotAllowed(['GET', 'HEAD']));
  return router;
}

function cachedParam(req: Request): boolean {
  parseId(String(req.params.registry_id));
  const value = req.query.cached;
  if (value === undefined || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1' || value === '') return true;
  throw ValidationError.of([{ pointer: '/cached', message: 'must be true or false' }], 'Invalid cached');
}
