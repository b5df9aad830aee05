import { execFileSync } from 'node:child_process';
import type dns from 'node:dns';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * `HEALTH_PROBE_DENY` for a spawned catalog that must reach loopback (with
 * `HEALTH_PROBE_ALLOW=127.0.0.0/8`) and nothing else: every IPv4 range but 127/8, and all of IPv6.
 */
export const NON_LOOPBACK_DENY = [
  '0.0.0.0/2',
  '64.0.0.0/3',
  '96.0.0.0/4',
  '112.0.0.0/5',
  '120.0.0.0/6',
  '124.0.0.0/7',
  '126.0.0.0/8',
  '128.0.0.0/1',
  '::/0',
].join(',');

/**
 * The environment of a spawned `serve` whose probe reaches loopback only and which runs neither
 * the health monitor nor the crawler (a test turns on what it tests); `env` adds or overrides.
 */
export function loopbackCatalogEnv(env: Record<string, string>): Record<string, string> {
  return {
    LOG_LEVEL: 'info',
    HEALTH_MONITOR_ENABLED: 'false',
    CRAWL_ENABLED: 'false',
    HEALTH_PROBE_ALLOW: '127.0.0.0/8',
    HEALTH_PROBE_DENY: NON_LOOPBACK_DENY,
    ...env,
  };
}

/** A loopback HTTP(S) server for probe tests that counts the connections it receives. */
export interface Target {
  readonly url: string;
  readonly connections: () => number;
  readonly requests: http.IncomingMessage[];
  close(): Promise<void>;
}

export async function serve(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  options: { host?: string; tls?: { key: string; cert: string } } = {},
): Promise<Target> {
  const requests: http.IncomingMessage[] = [];
  const wrapped = (req: http.IncomingMessage, res: http.ServerResponse) => {
    requests.push(req);
    handler(req, res);
  };
  const server = options.tls ? https.createServer(options.tls, wrapped) : http.createServer(wrapped);
  let connections = 0;
  server.on(options.tls ? 'secureConnection' : 'connection', () => connections++);
  if (options.tls) server.on('connection', () => undefined);
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${options.tls ? 'https' : 'http'}://${host}:${port}`,
    connections: () => connections,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const REGISTRY_HEADERS = {
  'docker-distribution-api-version': 'registry/2.0',
  'content-type': 'application/json',
};

/** Answers /v2/ like a registry. */
export function registryHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(200, REGISTRY_HEADERS);
  res.end('{}');
}

/** A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI. */
export function selfSignedCertificate(): { key: string; cert: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'probe-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-keyout',
        path.join(dir, 'key.pem'),
        '-out',
        path.join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return {
      key: readFileSync(path.join(dir, 'key.pem'), 'utf8'),
      cert: readFileSync(path.join(dir, 'cert.pem'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Inside a `describe`: a fresh `serve(handler)` for each test, closed after it; call the result to get it. */
export function targetPerTest(handler: Parameters<typeof serve>[0]): () => Target {
  let target: Target | undefined;
  beforeEach(async () => {
    target = await serve(handler);
  });
  afterEach(async () => {
    await target?.close();
    target = undefined;
  });
  return () => {
    if (target === undefined) throw new Error('targetPerTest: the target exists only while a test runs');
    return target;
  };
}

/** A resolver (the prober's `lookup`) that answers from `table` and records what it was asked. */
export function fakeResolver(table: Record<string, string[]>): {
  lookup: typeof dns.lookup;
  asked: string[];
} {
  const asked: string[] = [];
  const lookup = ((
    hostname: string,
    _options: unknown,
    callback: (error: Error | null, addresses: dns.LookupAddress[]) => void,
  ) => {
    asked.push(hostname);
    const answers = table[hostname];
    if (!answers) return callback(Object.assign(new Error('not found'), { code: 'ENOTFOUND' }), []);
    callback(
      null,
      answers.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
    );
  }) as unknown as typeof dns.lookup;
  return { lookup, asked };
}
