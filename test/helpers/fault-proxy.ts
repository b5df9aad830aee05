/**
 * A loopback HTTP proxy in front of a real registry, for the pull-through cache tests: it counts
 * the requests and bytes that reach the upstream, and injects faults a user sees from real
 * upstreams (slow answers, 429 rate limits, a bandwidth cap, an upstream that goes away).
 */
import http from 'node:http';
import { listen, type RunningServer } from '../../src/shared/server.js';

/** What the proxy does with the next requests; change it at any time. */
export interface FaultMode {
  /** Wait this long before forwarding (a slow upstream). */
  delayMs?: number;
  /** Answer this status instead of forwarding (429 gets `Retry-After: 30`). */
  status?: number;
  /** Cap on response body bytes per second (a slow link). */
  bytesPerSecond?: number;
  /** Cut each response after this many body bytes (an upstream dying mid-blob). */
  cutAfterBytes?: number;
  /** Send this many body bytes of each GET's response, then nothing, connection left open (a stall). */
  stallAfterBytes?: number;
  /**
   * Docker Hub's auth flow: `/v2/` requests need a Bearer token, which `GET /token` (the realm
   * named in the 401 challenge) issues for these Basic credentials.
   */
  bearer?: { username: string; password: string };
}

export interface FaultProxy {
  readonly url: string;
  readonly host: string;
  mode: FaultMode;
  /** Where requests go; may be switched (e.g. to a registry with other credentials). */
  target: string;
  /** Requests that reached the proxy, by `METHOD path` (query removed). */
  readonly counts: Map<string, number>;
  /** Response body bytes forwarded from the upstream. */
  bytes(): number;
  count(method: string, pathSuffix: string): number;
  /** TCP connections accepted from clients so far. */
  connections(): number;
  /** Client connections open now. */
  openConnections(): number;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const counts = new Map<string, number>();
  let forwarded = 0;
  const sockets = new Set<import('node:net').Socket>();
  const state: { mode: FaultMode; target: string } = { mode: {}, target };
  const tokens = new Set<string>();
  let self = '';
  const handler: http.RequestListener = (req, res) => {
    const key = `${req.method} ${(req.url ?? '').split('?')[0]}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const mode = state.mode;
    if (mode.bearer !== undefined) {
      const { username, password } = mode.bearer;
      const authorization = req.headers.authorization ?? '';
      if (key === 'GET /token') {
        const expected = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
        if (authorization !== expected) {
          res.writeHead(401, { 'Content-Type': 'application/json' });
          res.end('{"details":"incorrect username or password"}');
          return;
        }
        const token = `tok-${tokens.size + 1}-${password}`;
        tokens.add(token);
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ token, expires_in: 300 }));
        return;
      }
      if (
        !authorization.startsWith('Bearer ') ||
        !tokens.has(authorization.slice(7)) ||
        !authorization.endsWith(`-${password}`)
      ) {
        req.resume();
        res.writeHead(401, {
          'Content-Type': 'application/json',
          'WWW-Authenticate': `Bearer realm="${self}/token",service="fault-proxy",scope="repository:x:pull"`,
        });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
        return;
      }
    }
    const forward = () => {
      if (mode.status !== undefined) {
        req.resume();
        const headers: Record<string, string> = { 'Content-Type': 'application/json' };
        if (mode.status === 429) headers['Retry-After'] = '30';
        res.writeHead(mode.status, headers);
        res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'injected' }] }));
        return;
      }
      const upstream = http.request(
        new URL(req.url ?? '/', state.target),
        { method: req.method, headers: { ...req.headers, host: new URL(state.target).host } },
        (response) => {
          res.writeHead(response.statusCode ?? 502, response.headers);
          const rate = mode.bytesPerSecond;
          let sent = 0;
          let stalled = false;
          response.on('data', (chunk: Buffer) => {
            if (stalled) return;
            sent += chunk.length;
            if (mode.cutAfterBytes !== undefined && sent > mode.cutAfterBytes) {
              response.destroy();
              res.destroy();
              return;
            }
            const stall = req.method === 'GET' ? mode.stallAfterBytes : undefined;
            if (stall !== undefined && sent > stall) {
              const keep = chunk.length - (sent - stall);
              if (keep > 0) res.write(chunk.subarray(0, keep));
              forwarded += Math.max(keep, 0);
              // Nothing more, and the connection stays open until the client gives up.
              stalled = true;
              response.pause();
              return;
            }
            forwarded += chunk.length;
            if (!res.write(chunk)) response.pause();
            if (rate !== undefined) {
              response.pause();
              setTimeout(() => response.resume(), (chunk.length / rate) * 1000);
            }
          });
          res.on('drain', () => {
            if (rate === undefined && !stalled) response.resume();
          });
          response.on('end', () => res.end());
          response.on('error', () => res.destroy());
        },
      );
      upstream.on('error', () => res.destroy());
      res.on('close', () => upstream.destroy());
      req.pipe(upstream);
    };
    if (mode.delayMs === undefined) forward();
    else setTimeout(forward, mode.delayMs);
  };
  const server: RunningServer = await listen(handler, { host: '127.0.0.1', port: 0 });
  self = server.url;
  let accepted = 0;
  server.server.on('connection', (socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return {
    url: server.url,
    host: `127.0.0.1:${server.port}`,
    get mode() {
      return state.mode;
    },
    set mode(value: FaultMode) {
      state.mode = value;
    },
    get target() {
      return state.target;
    },
    set target(value: string) {
      state.target = value;
    },
    counts,
    bytes: () => forwarded,
    connections: () => accepted,
    openConnections: () => sockets.size,
    count: (method, suffix) =>
      [...counts]
        .filter(([key]) => key.startsWith(`${method} `) && key.endsWith(suffix))
        .reduce((sum, [, n]) => sum + n, 0),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await server.close(0);
    },
  };
}
