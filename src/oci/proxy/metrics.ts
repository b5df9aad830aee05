import { Counter, type Registry } from 'prom-client';

/** Metrics of the pull-through cache, registered on the app's registry. */
export class ProxyMetrics {
  /** `result`: hit (served from cache), miss (fetched upstream), stale (cached, upstream failed). */
  readonly requests: Counter<'upstream' | 'kind' | 'result'>;
  readonly upstreamErrors: Counter<'upstream' | 'reason'>;
  readonly upstreamBytes: Counter<'upstream'>;
  /** Upstream blob fetches started (one per digest however many clients wait). */
  readonly blobFetches: Counter<'upstream'>;

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: 'registry_proxy_requests_total',
      help: 'Pull-through cache requests by upstream, kind (manifest, blob, referrers) and result (hit, miss, stale)',
      labelNames: ['upstream', 'kind', 'result'] as const,
      registers: [registry],
    });
    this.upstreamErrors = new Counter({
      name: 'registry_proxy_upstream_errors_total',
      help: 'Failed upstream round trips by upstream and reason',
      labelNames: ['upstream', 'reason'] as const,
      registers: [registry],
    });
    this.upstreamBytes = new Counter({
      name: 'registry_proxy_upstream_bytes_total',
      help: 'Blob and manifest bytes received from upstreams',
      labelNames: ['upstream'] as const,
      registers: [registry],
    });
    this.blobFetches = new Counter({
      name: 'registry_proxy_blob_fetches_total',
      help: 'Upstream blob fetches started',
      labelNames: ['upstream'] as const,
      registers: [registry],
    });
  }
}
