import type { ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

/** A Prometheus registry for one app instance, with process metrics. */
export function createMetricsRegistry(prefix: string): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix });
  return registry;
}

export interface HttpMetrics {
  /** Records one answered request. */
  record(method: string, route: string, status: number, seconds: number): void;
  /** Records `res` when it finishes, under `route()` (a route template: bounded label values). */
  track(method: string, res: ServerResponse, route: () => string): void;
  /** Express middleware tracking every request under its matched route template. */
  readonly middleware: RequestHandler;
}

export interface HttpMetricsOptions {
  /**
   * The route template of a path, for requests answered before the router matched a route (a
   * malformed or oversized body is refused by the body parser in front of the routes): they are
   * counted under the route they were sent to, not as "unmatched". `url` may carry a query.
   */
  readonly routeOf?: (method: string, url: string) => string | undefined;
}

/** Counts requests and measures latency by method, route template and status. */
export function httpMetrics(
  registry: Registry,
  prefix: string,
  options: HttpMetricsOptions = {},
): HttpMetrics {
  const labelNames = ['method', 'route', 'status'] as const;
  const requests = new Counter({
    name: `${prefix}http_requests_total`,
    help: 'HTTP requests',
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: `${prefix}http_request_duration_seconds`,
    help: 'HTTP request latency',
    labelNames,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  // prom-client hashes label sets on every call; the bound children are cached per label set.
  const bound = new Map<string, { count: () => void; observe: (seconds: number) => void }>();
  const child = (method: string, route: string, status: number) => {
    const key = `${method} ${route} ${status}`;
    let found = bound.get(key);
    if (!found) {
      const labels = { method, route, status: String(status) };
      const counter = requests.labels(labels);
      const histogram = duration.labels(labels);
      found = { count: () => counter.inc(), observe: (seconds) => histogram.observe(seconds) };
      if (bound.size < 1000) bound.set(key, found);
    }
    return found;
  };
  const record: HttpMetrics['record'] = (method, route, status, seconds) => {
    const series = child(method, route, status);
    series.count();
    series.observe(seconds);
  };
  const track: HttpMetrics['track'] = (method, res, route) => {
    const start = performance.now();
    res.once('finish', () => record(method, route(), res.statusCode, (performance.now() - start) / 1000));
  };
  return {
    record,
    track,
    middleware: (req, res, next) => {
      track(req.method, res, () => {
        const routePath = (req.route as { path?: unknown } | undefined)?.path;
        if (typeof routePath === 'string') return `${req.baseUrl}${routePath}`;
        return options.routeOf?.(req.method, req.originalUrl) ?? 'unmatched';
      });
      next();
    },
  };
}
