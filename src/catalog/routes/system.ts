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

// Swagger UI loads the spec from /openapi.json rather than having it inlined into
// swagger-ui-init.js: the inlining goes through String.replace, which reads `$'` and friends in
// schema text as replacement patterns. The URL is relative so /docs works behind a path prefix;
// customCss is given so the page's <style> does not say "undefined"; validatorUrl null keeps
// the browser from sending the spec to an outside validator.
export const docs = (): RequestHandler[] => [
  ...swaggerUi.serve,
  swaggerUi.setup(undefined, {
    customSiteTitle: 'AIOS container registry catalog',
    customCss: '',
    swaggerOptions: { url: '../openapi.json', validatorUrl: null },
  }),
];
