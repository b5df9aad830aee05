import type { RequestHandler } from 'express';
import swaggerUi from 'swagger-ui-express';
import { sendProblem } from '../http/problem.js';
import type { CatalogServices } from './services.js';

/** The operational routes: liveness, readiness, metrics, the API description and its viewer. */

export const liveness = (): RequestHandler =>
  function liveness(_req, res) {
    res.json({ success: true, data: { status: 'ok' } });
  };

export const readiness = ({ ping }: CatalogServices): RequestHandler =>
  async function readiness(req, res) {
    try {
      await ping();
      res.json({ success: true, data: { status: 'ready' } });
    } catch (error) {
      req.log.warn({ err: error }, 'store not reachable');
      sendProblem(req, res, 'unavailable', 'The store does not answer');
    }
  };

export const prometheusMetrics = ({ metrics }: CatalogServices): RequestHandler =>
  async function prometheusMetrics(_req, res) {
    res.type(metrics.contentType).send(await metrics.metrics());
  };

export const openapiDocument = ({ openapi }: CatalogServices): RequestHandler =>
  function openapiDocument(_req, res) {
    res.json(openapi);
  };

export const docs = ({ openapi }: CatalogServices): RequestHandler[] => [
  ...swaggerUi.serve,
  swaggerUi.setup(openapi, { customSiteTitle: 'AIOS container registry catalog' }),
];
