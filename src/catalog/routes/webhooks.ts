import type { RequestHandler } from 'express';
import { parsePage } from '../domain/parameters.js';
import type { CatalogServices } from './services.js';

/** Webhook routes (README, "Events and webhooks"). Registered only when the catalog has an event store. */

export const createWebhook = ({ webhooks }: CatalogServices): RequestHandler =>
  async function createWebhook(req, res) {
    const webhook = await webhooks!.create(req.body);
    res.status(201).location(`/webhooks/${webhook.webhook_id}`).json({ success: true, data: webhook });
  };

export const listWebhooks = ({ webhooks }: CatalogServices): RequestHandler =>
  async function listWebhooks(req, res) {
    const { limit, skip } = parsePage({ limit: req.query.limit, skip: req.query.skip });
    const { items, total } = await webhooks!.list({ limit, skip });
    res.set('X-Total-Count', String(total)).json({ success: true, data: items });
  };

export const readWebhook = ({ webhooks }: CatalogServices): RequestHandler =>
  async function readWebhook(req, res) {
    res.json({ success: true, data: await webhooks!.get(String(req.params.webhook_id)) });
  };

export const updateWebhook = ({ webhooks }: CatalogServices): RequestHandler =>
  async function updateWebhook(req, res) {
    res.json({ success: true, data: await webhooks!.update(String(req.params.webhook_id), req.body) });
  };

export const deleteWebhook = ({ webhooks }: CatalogServices): RequestHandler =>
  async function deleteWebhook(req, res) {
    await webhooks!.delete(String(req.params.webhook_id));
    res.json({ success: true, data: { message: 'Webhook deleted' } });
  };

export const listDeliveries = ({ webhooks }: CatalogServices): RequestHandler =>
  async function listDeliveries(req, res) {
    const { limit, skip } = parsePage({ limit: req.query.limit, skip: req.query.skip });
    const status = typeof req.query.status === 'string' ? req.query.status : undefined;
    const { items, total } = await webhooks!.deliveries(
      String(req.params.webhook_id),
      { limit, skip },
      status,
    );
    res.set('X-Total-Count', String(total)).json({ success: true, data: items });
  };

export const redeliver = ({ webhooks }: CatalogServices): RequestHandler =>
  async function redeliver(req, res) {
    const delivery = await webhooks!.redeliver(String(req.params.webhook_id), String(req.params.delivery_id));
    res.status(202).json({ success: true, data: delivery });
  };
