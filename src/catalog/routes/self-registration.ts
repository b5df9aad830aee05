import type { Request, RequestHandler } from 'express';
import { toPublic } from '../domain/credentials.js';
import type { CatalogServices } from './services.js';

/**
 * Routes a bundled registry started with `--register-with` calls (DESIGN.md section 12); the
 * `register` role suffices for them. Registered only when the catalog keeps heartbeats.
 */

/** What every self-registration call takes: the registry named in the path, the body, the caller. */
const callOf = (req: Request) => [String(req.params.registry_id), req.body, req.principal] as const;

export const registerRegistry = ({ selfRegistration }: CatalogServices): RequestHandler =>
  async function registerRegistry(req, res) {
    const { created, document } = await selfRegistration!.heartbeats.register(...callOf(req));
    if (created) res.status(201).set('Location', `/container_registry/${document.container_registry_id}`);
    res.json({
      success: true,
      data: {
        message: created ? 'Container registry registered' : 'Container registry registration updated',
        id: document.container_registry_id,
        container_registry: toPublic(document),
      },
    });
  };

export const registryHeartbeat = ({ selfRegistration }: CatalogServices): RequestHandler =>
  async function registryHeartbeat(req, res) {
    res.json({ success: true, data: await selfRegistration!.heartbeats.beat(...callOf(req)) });
  };

export const registryEvents = ({ selfRegistration }: CatalogServices): RequestHandler =>
  async function registryEvents(req, res) {
    res.json({ success: true, data: await selfRegistration!.events.apply(...callOf(req)) });
  };
