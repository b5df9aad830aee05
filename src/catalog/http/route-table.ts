import type { Express, RequestHandler } from 'express';
import type { Requirement } from '../access/policy.js';
import type { Role } from '../access/tokens.js';
import { methodNotAllowed } from './problem.js';

/** How a request is counted by the rate limiter: `health-check` also counts against the lower probe limit. */
export type RateLimit = 'none' | 'client' | 'health-check';

/**
 * What a fast read answers (status 200, JSON): the extra headers and the serialised body. The
 * front door prepares the full header set once per answer object, so a route that returns the
 * same object for the same stored document (a cache) saves that work too.
 */
export interface FastAnswer {
  readonly headers: Readonly<Record<string, string>>;
  readonly payload: string;
}

/**
 * One declared route. Express registration, the access requirement and the fast-read match are
 * all derived from a table of these (src/catalog/routes/table.ts), so they cannot disagree.
 * `S` is what handlers are built from (the app's services).
 */
export interface RouteSpec<S> {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Express path syntax; `:name` is one path segment. */
  readonly path: string;
  /** A mount: the handler serves `path` and everything below it (Express `app.use`). */
  readonly mount?: boolean;
  /** `public` needs no token and is never rate limited (the kubelet's probes). */
  readonly role: Role | 'public';
  /** A function of the query string when the query decides (`?verify=true` probes). */
  readonly rateLimit: RateLimit | ((query: string) => RateLimit);
  /**
   * Answers a plain GET before Express (no conditional or cross-origin headers); rejecting hands
   * the request to Express, which answers it as usual (errors included). `query` is parsed as
   * Express parses it (`query parser: simple`, i.e. node:querystring), so both paths see the
   * same values.
   */
  readonly fastRead?: (
    services: S,
  ) => (params: Readonly<Record<string, string>>, query: Readonly<ParsedQuery>) => Promise<FastAnswer>;
  /** Builds the Express handler (a chain for a mount) once per app; registered when `available(services)`. */
  readonly handler: (services: S) => RequestHandler | RequestHandler[];
  readonly available?: (services: S) => boolean;
}

/** A query string parsed the way Express parses it here (`node:querystring`). */
export type ParsedQuery = Record<string, string | string[] | undefined>;

/** A route matched by method and path, with its path parameters. */
export interface RouteMatch<S> {
  readonly route: RouteSpec<S>;
  readonly params: Record<string, string>;
  /** The raw query string, without `?`. */
  readonly query: string;
}

interface Compiled<S> {
  readonly route: RouteSpec<S>;
  readonly pattern: RegExp;
  readonly names: readonly string[];
}

/**
 * The table compiled for matching the way Express routes (case-insensitive, one optional
 * trailing slash; HEAD is served by GET routes). Unmatched requests need `read` to look and
 * `write` to change, so a route added without an entry is never open by accident; CORS
 * preflights (OPTIONS) carry no token and are public.
 */
export class RouteIndex<S> {
  private readonly byMethod = new Map<string, Compiled<S>[]>();

  constructor(readonly routes: readonly RouteSpec<S>[]) {
    for (const route of routes) {
      const names: string[] = [];
      const source = route.path
        .replace(/[.+*?^$()[\]{}|\\]/g, '\\$&')
        .replace(/:(\w+)/g, (_, name: string) => {
          names.push(name);
          return '([^/]+)';
        });
      const tail = route.mount ? '(?:/.*)?' : '/?';
      const compiled = { route, pattern: new RegExp(`^${source}${tail}$`, 'i'), names };
      const list = this.byMethod.get(route.method) ?? [];
      list.push(compiled);
      this.byMethod.set(route.method, list);
    }
  }

  match(method: string, url: string): RouteMatch<S> | undefined {
    const candidates = this.byMethod.get(method === 'HEAD' ? 'GET' : method);
    if (!candidates) return undefined;
    const mark = url.indexOf('?');
    const path = mark === -1 ? url : url.slice(0, mark);
    const query = mark === -1 ? '' : url.slice(mark + 1);
    for (const { route, pattern, names } of candidates) {
      const found = pattern.exec(path);
      if (!found) continue;
      const params: Record<string, string> = {};
      names.forEach((name, i) => (params[name] = found[i + 1]!));
      return { route, params, query };
    }
    return undefined;
  }

  /** What a request needs before it reaches a route (access/policy.ts decides on it). */
  requirement(method: string, match: RouteMatch<S> | undefined): Requirement {
    if (method === 'OPTIONS') return { role: 'public', probe: false };
    if (!match) return { role: method === 'GET' || method === 'HEAD' ? 'read' : 'write', probe: false };
    const { role, rateLimit } = match.route;
    const limit = typeof rateLimit === 'function' ? rateLimit(match.query) : rateLimit;
    return { role, probe: limit === 'health-check' };
  }

  /** Registers every available route on `app`, then a 405 with `Allow` for other methods on each path. */
  register(app: Express, services: S): void {
    const allowed = new Map<string, string[]>();
    for (const route of this.routes) {
      if (route.available && !route.available(services)) continue;
      const handler = route.handler(services);
      if (route.mount) {
        app.use(route.path, handler);
        continue;
      }
      app[route.method === 'DELETE' ? 'delete' : (route.method.toLowerCase() as 'get' | 'post' | 'put')](
        route.path,
        handler,
      );
      const methods = allowed.get(route.path) ?? [];
      methods.push(...(route.method === 'GET' ? ['GET', 'HEAD'] : [route.method]));
      allowed.set(route.path, methods);
    }
    // route().all, not app.all: one route for every other method (app.all lists each method).
    for (const [path, methods] of allowed) app.route(path).all(methodNotAllowed(methods));
  }
}
