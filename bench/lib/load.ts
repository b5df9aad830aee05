import autocannon from 'autocannon';

export interface LoadResult {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly non2xx: number;
}

export interface LoadOptions {
  readonly url: string;
  readonly method?: 'GET' | 'POST' | 'PUT';
  /** Builds each request; called once per request so ids and bodies can vary. */
  readonly next?: () => { path: string; body?: string };
  readonly connections?: number;
  readonly durationSeconds?: number;
  readonly headers?: Record<string, string>;
}

/** One autocannon run with the same settings for every target, so results can be compared. */
export async function load(options: LoadOptions): Promise<LoadResult> {
  const { next } = options;
  const result = await autocannon({
    url: options.url,
    connections: options.connections ?? 16,
    duration: options.durationSeconds ?? 5,
    headers: { 'content-type': 'application/json', ...options.headers },
    requests: [
      {
        method: options.method ?? 'GET',
        setupRequest: (request) => {
          if (!next) return request;
          const { path, body } = next();
          return { ...request, path, ...(body === undefined ? {} : { body }) };
        },
      },
    ],
  });
  return {
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

export function formatRow(cells: ReadonlyArray<string | number>, widths: readonly number[]): string {
  return cells.map((cell, i) => String(cell).padEnd(widths[i] ?? 12)).join(' ');
}
