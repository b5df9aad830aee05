import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The registry's Prometheus metrics; one instance (and one prom-client `Registry`) per app. */
export class OciMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'registry_http_requests_total',
    help: 'HTTP requests by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'registry_http_request_duration_seconds',
    help: 'HTTP request duration by method and route',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  readonly bytesReceived = new Counter({
    name: 'registry_blob_bytes_received_total',
    help: 'Blob bytes received by uploads',
    registers: [this.registry],
  });
  readonly bytesSent = new Counter({
    name: 'registry_blob_bytes_sent_total',
    help: 'Blob bytes sent by downloads',
    registers: [this.registry],
  });
  readonly uploadsPurged = new Counter({
    name: 'registry_uploads_purged_total',
    help: 'Abandoned uploads removed after the upload timeout',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'registry_' });
  }
}
