import { ClientError, kindOfStatus } from './errors.js';
import type { ClientConfig } from './config.js';

/** A registry entry as the API answers it (credentials already masked by the server). */
export type RegistryDocument = Record<string, unknown> & { container_registry_id: string };

/** One page of a listing and the total the server counted (`X-Total-Count`). */
export interface Page<T> {
  readonly items: T[];
  readonly total: number | undefined;
}

/** Paging of a listing: `sort` is `field` or `-field`; `health` a comma list of statuses. */
export interface PageRequest {
  readonly limit?: number;
  readonly skip?: number;
  readonly sort?: string;
  readonly health?: string;
}

type Query = Record<string, string | number | boolean | undefined>;

/** The page size `--all` walks with: the API's largest. */
export const ALL_PAGE_SIZE = 1000;

/**
 * The catalog's JSON API over global fetch: one method per route the CLI uses. Every failure is a
 * `ClientError` with one sentence (the envelope's `error` when the catalog sent one).
 */
export class CatalogClient {
  constructor(private readonly config: ClientConfig) {}

  getRegistry(id: string): Promise<RegistryDocument> {
    return this.data('GET', `/container_registry/${segment(id)}`);
  }

  createRegistry(
    document: unknown,
    verify: boolean,
  ): Promise<{ id: string; container_registry: RegistryDocument }> {
    return this.data('POST', '/container_registry', {
      body: document,
      query: { verify: verify || undefined },
    });
  }

  updateRegistry(id: string, update: unknown): Promise<{ container_registry: RegistryDocument }> {
    return this.data('PUT', `/container_registry/${segment(id)}`, { body: update });
  }

  deleteRegistry(id: string): Promise<{ message: string }> {
    return this.data('DELETE', `/container_registry/${segment(id)}`);
  }

  queryRegistries(filter: unknown, page: PageRequest): Promise<Page<RegistryDocument>> {
    return this.page('POST', '/container_registries', page, filter);
  }

  /** Probes the registry now, or (`cached`) answers its last stored report. */
  checkHealth(id: string, cached: boolean): Promise<Record<string, unknown>> {
    return this.data('GET', `/check_container_health/${segment(id)}`, {
      query: { cached: cached || undefined },
    });
  }

  healthStatuses(page: PageRequest): Promise<Page<Record<string, unknown>>> {
    return this.page('GET', '/container_registries/health', { limit: page.limit, skip: page.skip });
  }

  queryImages(filter: unknown, page: PageRequest): Promise<Page<Record<string, unknown>>> {
    return this.page('POST', '/container_images', page, filter);
  }

  resolveImage(request: {
    reference?: string;
    digest?: string;
    platform?: string;
    signed?: boolean;
  }): Promise<{ candidates: Array<Record<string, unknown>> } & Record<string, unknown>> {
    return this.data('GET', '/resolve_image', { query: { ...request, signed: request.signed || undefined } });
  }

  private async page<T>(method: string, path: string, page: PageRequest, body?: unknown): Promise<Page<T>> {
    const query: Query = { limit: page.limit, skip: page.skip, sort: page.sort, health: page.health };
    const { data, headers } = await this.send(method, path, { body, query });
    if (!Array.isArray(data)) throw this.notOurs(200, headers);
    const total = Number(headers.get('x-total-count') ?? Number.NaN);
    return { items: data as T[], total: Number.isInteger(total) ? total : undefined };
  }

  private async data<T>(
    method: string,
    path: string,
    options: { body?: unknown; query?: Query } = {},
  ): Promise<T> {
    return (await this.send(method, path, options)).data as T;
  }

  private async send(
    method: string,
    path: string,
    { body, query = {} }: { body?: unknown; query?: Query },
  ): Promise<{ data: unknown; headers: Headers }> {
    const url = new URL(`${this.config.baseUrl}${path}`);
    for (const [key, value] of Object.entries(query))
      if (value !== undefined) url.searchParams.set(key, String(value));
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.config.token !== undefined) headers.authorization = `Bearer ${this.config.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        // The catalog never redirects its API: following one could hand the token to another host.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.config.timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      throw this.unreachable(error);
    }
    let parsed: { success?: unknown; data?: unknown; error?: unknown } | undefined;
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      parsed = undefined;
    }
    if (response.ok && parsed?.success === true) return { data: parsed.data, headers: response.headers };
    if (parsed?.success === false && typeof parsed.error === 'string')
      throw new ClientError(kindOfStatus(response.status), oneLine(parsed.error), response.status);
    if (response.status >= 300 && response.status < 400) {
      throw new ClientError(
        'unavailable',
        `the catalog at ${this.config.baseUrl} answered a redirect (${response.status}) to ${oneLine(response.headers.get('location') ?? 'nowhere')}; give that address as --url`,
        response.status,
      );
    }
    throw this.notOurs(response.status, response.headers);
  }

  private notOurs(status: number, headers: Headers): ClientError {
    const type = headers.get('content-type')?.split(';')[0] ?? 'no content type';
    return new ClientError(
      status >= 400 ? kindOfStatus(status) : 'unavailable',
      `${this.config.baseUrl} answered HTTP ${status} (${oneLine(type)}) that is not the catalog's JSON envelope; is --url the catalog?`,
      status,
    );
  }

  private unreachable(error: unknown): ClientError {
    const where = this.config.baseUrl;
    if (error instanceof DOMException && error.name === 'TimeoutError')
      return new ClientError(
        'unavailable',
        `no answer from the catalog at ${where} within ${this.config.timeoutMs} ms`,
      );
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (error as Error).message;
    return new ClientError('unavailable', `cannot reach the catalog at ${where}: ${oneLine(String(reason))}`);
  }
}

/**
 * Every page of a listing, `ALL_PAGE_SIZE` at a time, from `start.skip`: one page in memory at
 * once, so the caller writes each out before the next is asked for.
 */
export async function* allPages<T>(
  fetchPage: (page: PageRequest) => Promise<Page<T>>,
  start: PageRequest,
): AsyncGenerator<Page<T>> {
  let skip = start.skip ?? 0;
  for (;;) {
    const page = await fetchPage({ ...start, skip, limit: ALL_PAGE_SIZE });
    yield page;
    skip += page.items.length;
    if (page.items.length < ALL_PAGE_SIZE || (page.total !== undefined && skip >= page.total)) return;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A registry id checked before it goes into a path: only a UUID, so `..`, `a/b` or `%2e%2e` (which
 * URL parsing folds into another route) never reach the catalog.
 */
function segment(id: string): string {
  if (!UUID.test(id))
    throw new ClientError('usage', `not a registry id (a UUID): ${JSON.stringify(oneLine(id).slice(0, 80))}`);
  return id;
}

/** Messages go on one stderr line whatever the server sent (bounded, control characters removed). */
function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  const flat = text.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  return flat.length > 500 ? `${flat.slice(0, 500)}...` : flat;
}
