import { Router, type Request } from 'express';
import type { ContainerRegistry, StoredRegistry } from '../store/registry-store.js';
import { ValidationError } from '../errors.js';
import { methodNotAllowed } from '../http/problem.js';
import type { RegistryService } from '../domain/registries.js';
import { etagOf, parsePage, toPublic } from '../domain/registries.js';
import { parseHealthStatuses, type HealthService } from '../domain/health-service.js';

/** The AIOS routes. Thin: parse the HTTP parts, call one service method, answer in the envelope. */
export function registryRoutes(service: RegistryService, health?: HealthService): Router {
  const router = Router();

  router.post('/container_registry', async (req, res) => {
    const stored = await service.create(req.body, { verify: booleanParam(req, 'verify') });
    const id = stored.document.container_registry_id;
    res
      .status(201)
      .location(`/container_registry/${id}`)
      .set('ETag', etagOf(stored))
      .json({
        success: true,
        data: { message: 'Container registry created', id, container_registry: toPublic(stored.document) },
      });
  });

  router.get('/container_registry/:registry_id', async (req, res) => {
    const { etag, body } = readResponse(await service.get(req.params.registry_id));
    res.set('ETag', etag);
    if (req.headers['if-none-match']?.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)) {
      res.status(304).end();
      return;
    }
    res.json(body);
  });

  router.put('/container_registry/:registry_id', async (req, res) => {
    const stored = await service.update(req.params.registry_id, req.body, {
      ifMatch: req.headers['if-match'],
    });
    res.set('ETag', etagOf(stored)).json({
      success: true,
      data: { message: 'Container registry updated', container_registry: toPublic(stored.document) },
    });
  });

  router.delete('/container_registry/:registry_id', async (req, res) => {
    await service.delete(req.params.registry_id, { ifMatch: req.headers['if-match'] });
    await health?.forget(req.params.registry_id.toLowerCase());
    res.json({ success: true, data: { message: 'Container registry deleted' } });
  });

  router.post('/container_registries', async (req, res) => {
    const page = parsePage(req.query);
    const statuses = parseHealthStatuses(req.query.health);
    const onlyIds = statuses && health ? await health.idsWithStatus(statuses) : undefined;
    const { items, total } = await service.query(req.body, page, onlyIds);
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
  });

  router.all('/container_registry', methodNotAllowed(['POST']));
  router.all('/container_registry/:registry_id', methodNotAllowed(['GET', 'HEAD', 'PUT', 'DELETE']));
  router.all('/container_registries', methodNotAllowed(['POST']));
  return router;
}

/** What a read answers: the entity tag and the envelope with the public document. */
export function readResponse(stored: StoredRegistry): {
  etag: string;
  body: { success: true; data: ContainerRegistry };
} {
  return { etag: etagOf(stored), body: { success: true, data: toPublic(stored.document) } };
}

function booleanParam(req: Request, name: string): boolean {
  const value = req.query[name];
  if (value === undefined || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1' || value === '') return true;
  throw ValidationError.of([{ pointer: `/${name}`, message: 'must be true or false' }], `Invalid ${name}`);
}
