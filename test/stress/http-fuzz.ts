/**
 * HTTP fuzzing of both servers as processes: random and mutated requests (methods, paths,
 * queries, headers, bodies) against the catalog (embedded or MongoDB store) and the bundled
 * registry. Asserts: no 5xx, the process stays up, and no rejected (4xx) request changes what is
 * stored. Reproducible: the same seed sends the same requests.
 *
 *   node --import tsx test/stress/http-fuzz.ts [--requests 10000] [--seed 42] [--target all|catalog-embedded|catalog-mongo|registry]
 *
 * test/integration/http-fuzz.test.ts runs it in `npm test`; results in test/stress/RESULTS.md.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { createToken } from '../../src/catalog/access/tokens.js';
import { BLOBS_DIR, REPOSITORIES_DIR } from '../../src/oci/storage/layout.js';
import { FUZZ_KEYS } from '../helpers/fuzz-vocabulary.js';
import { getMongoUri, stopMongoServer } from '../helpers/mongo-server.js';
import { pushImage } from '../helpers/registry.js';
import { spawnCli, type CliProcess } from '../helpers/spawn-cli.js';

export interface FuzzRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
}

export interface FuzzReport {
  readonly target: string;
  readonly requests: number;
  readonly statuses: Record<string, number>;
  /** Requests answered 5xx or not at all, with what was sent. */
  readonly failures: string[];
  /** Rejected requests after which the stored state differed. */
  readonly stateChanges: string[];
  readonly stateChecks: number;
  readonly seconds: number;
  readonly alive: boolean;
}

const admin = createToken('fuzz-admin', 'admin');
const reader = createToken('fuzz-reader', 'read');

// ---------------------------------------------------------------- generators

const junkSegment = fc.oneof(
  fc.constantFrom(
    '..',
    '.',
    '%2e%2e',
    '%00',
    '%ff',
    '%',
    '~',
    'é',
    '😀',
    ' ',
    '%20',
    '//',
    'a'.repeat(300),
    '$where',
  ),
  fc.string({ maxLength: 12 }).map(encodeURIComponent),
  fc.uuid(),
);
const jsonKeys = fc.constantFrom(
  ...FUZZ_KEYS,
  'schemaVersion',
  'mediaType',
  'layers',
  'config',
  'digest',
  'size',
);
const jsonValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ maxLength: 30 }),
    fc.constantFrom(
      'http://127.0.0.1:9',
      'https://127.0.0.1:1/x',
      'ftp://x',
      '*****',
      'aes256gcm:k:a:b:c',
      '\u0000',
      '(a+)+$',
    ),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(jsonKeys, tie('value'), { maxKeys: 4 }),
  ),
})).value;
const deep = fc.nat({ max: 60 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth));

function mutate(bytes: Buffer, how: number, at: number): Buffer {
  if (bytes.length === 0) return bytes;
  const i = at % bytes.length;
  const copy = Buffer.from(bytes);
  switch (how % 4) {
    case 0:
      copy[i] = (copy[i]! + 1 + (at % 255)) % 256;
      return copy;
    case 1:
      return copy.subarray(0, i);
    case 2:
      return Buffer.concat([copy.subarray(0, i), Buffer.from('"}]{\u0000'), copy.subarray(i)]);
    default:
      return Buffer.concat([copy, copy]);
  }
}

/** A body: JSON from our languages' vocabulary, a mutated valid body, raw bytes or awkward text. */
function bodyArb(valid: fc.Arbitrary<unknown>): fc.Arbitrary<Buffer | undefined> {
  return fc.oneof(
    fc.constant(undefined),
    jsonValue.map((value) => Buffer.from(JSON.stringify(value) ?? 'null')),
    valid.map((value) => Buffer.from(JSON.stringify(value))),
    fc
      .tuple(valid, fc.nat(), fc.nat())
      .map(([value, how, at]) => mutate(Buffer.from(JSON.stringify(value)), how, at)),
    deep.map((text) => Buffer.from(text)),
    fc.uint8Array({ maxLength: 256 }).map((bytes) => Buffer.from(bytes)),
    fc
      .constantFrom('1e999999', '-0', '"\\ud800"', '{"a":1,"a":2}', '', ' ', 'null', '[]', '{}')
      .map((t) => Buffer.from(t)),
  );
}

const method = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('GET', 'POST', 'PUT') },
  { weight: 2, arbitrary: fc.constantFrom('DELETE', 'HEAD', 'PATCH') },
  { weight: 1, arbitrary: fc.constantFrom('OPTIONS', 'TRACE', 'PROPFIND') },
);

function catalogRequests(ids: readonly string[]): fc.Arbitrary<FuzzRequest> {
  const id = fc.oneof(fc.constantFrom(...ids), fc.uuid(), junkSegment);
  const pathArb = fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .tuple(fc.constantFrom('/container_registry/', '/check_container_health/'), id)
        .map(([a, b]) => a + b),
    },
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        '/container_registry',
        '/container_registries',
        '/container_registries/health',
      ),
    },
    { weight: 2, arbitrary: id.map((value) => `/container_registry/${value}/health`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '/healthz',
        '/readyz',
        '/metrics',
        '/openapi.json',
        '/docs/',
        '/CONTAINER_REGISTRY',
        '/container_registry/',
      ),
    },
    {
      weight: 1,
      arbitrary: fc.array(junkSegment, { minLength: 1, maxLength: 4 }).map((parts) => `/${parts.join('/')}`),
    },
  );
  const query = fc.option(
    fc
      .array(
        fc.tuple(
          fc.constantFrom('limit', 'skip', 'sort', 'cached', 'verify', 'health', 'x', 'limit'),
          fc.oneof(
            fc.constantFrom(
              '1',
              '0',
              '-1',
              '1000',
              '1001',
              '99999999999',
              'true',
              'false',
              '',
              'healthy,unknown',
              '-container_registry_name',
              'container_registry_metadata.a',
              '$where',
            ),
            junkSegment,
          ),
        ),
        { maxLength: 3 },
      )
      .map((pairs) => `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`),
    { nil: '' },
  );
  const validBody = fc.oneof(
    fc.record({
      container_registry_name: fc.string({ minLength: 1, maxLength: 20 }),
      container_registry_public_url: fc.constantFrom('http://127.0.0.1:9', 'https://127.0.0.1:8443'),
      container_registry_tags: fc.uniqueArray(fc.constantFrom('a', 'b', 'prod', 'dev'), { maxLength: 3 }),
    }),
    fc.record({ $set: fc.dictionary(jsonKeys, jsonValue, { maxKeys: 2 }) }),
    fc.record({
      container_registry_tags: fc.record({ $in: fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }) }),
    }),
  );
  const auth = fc.oneof(
    { weight: 8, arbitrary: fc.constant(`Bearer ${admin.token}`) },
    { weight: 1, arbitrary: fc.constant(`Bearer ${reader.token}`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        undefined,
        'Bearer',
        'Bearer junk',
        'Basic YTpi',
        `bearer ${admin.token}x`,
        '',
      ),
    },
  );
  const contentType = fc.oneof(
    { weight: 6, arbitrary: fc.constant('application/json') },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'application/json; charset=utf-16',
        'text/plain',
        'application/merge-patch+json',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        undefined,
      ),
    },
  );
  return fc
    .record({
      method,
      path: pathArb,
      query,
      body: bodyArb(validBody),
      auth,
      contentType,
      ifMatch: fc.option(fc.constantFrom('"x"', '*', 'W/"1"', '"'), { nil: undefined }),
      origin: fc.option(fc.constantFrom('https://evil.example', 'null'), { nil: undefined }),
    })
    .map(({ method: m, path: p, query: q, body, auth: a, contentType: ct, ifMatch, origin }) => {
      const headers: Record<string, string> = {};
      if (a !== undefined) headers.authorization = a;
      if (ct !== undefined && body !== undefined) headers['content-type'] = ct;
      if (ifMatch !== undefined) headers['if-match'] = ifMatch;
      if (origin !== undefined) headers.origin = origin;
      return { method: m, path: p + q, headers, body };
    });
}

function registryRequests(
  names: readonly string[],
  digests: readonly string[],
  uploads: () => string[],
): fc.Arbitrary<FuzzRequest> {
  const name = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...names) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'UPPER/case',
        'a//b',
        '../etc',
        'a/../b',
        '-a',
        'a'.repeat(300),
        '_catalog',
        'x/_uploads',
      ),
    },
    { weight: 1, arbitrary: junkSegment },
  );
  const digest = fc.oneof(
    fc.constantFrom(...digests),
    fc.constantFrom(
      'sha256:' + '0'.repeat(64),
      'sha256:abc',
      'sha512:' + 'f'.repeat(128),
      'md5:x',
      'latest',
      'v1',
    ),
    junkSegment,
  );
  const uploadId = fc.oneof(
    fc.constant(null).map(() => uploads()[0] ?? randomUUID()),
    fc.uuid(),
    junkSegment,
  );
  const pathArb = fc.oneof(
    fc.constantFrom('/v2/', '/v2', '/v2/_catalog', '/metrics', '/v2/_catalog?n=1&last=a', '/v3/'),
    fc
      .tuple(name, fc.oneof(digest, fc.constantFrom('v1', 'latest')))
      .map(([n, r]) => `/v2/${n}/manifests/${r}`),
    fc.tuple(name, digest).map(([n, d]) => `/v2/${n}/blobs/${d}`),
    name.map((n) => `/v2/${n}/blobs/uploads/`),
    fc.tuple(name, uploadId).map(([n, u]) => `/v2/${n}/blobs/uploads/${u}`),
    name.map((n) => `/v2/${n}/tags/list`),
    fc.tuple(name, digest).map(([n, d]) => `/v2/${n}/referrers/${d}`),
  );
  const query = fc.option(
    fc
      .array(
        fc.tuple(
          fc.constantFrom('digest', 'mount', 'from', 'n', 'last', 'artifactType'),
          fc.oneof(digest, name, fc.constantFrom('0', '-1', '10', 'x')),
        ),
        { maxLength: 3 },
      )
      .map((pairs) => `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`),
    { nil: '' },
  );
  const manifest = fc.record({
    schemaVersion: fc.constantFrom(2, 1, 3),
    mediaType: fc.constantFrom(
      'application/vnd.oci.image.manifest.v1+json',
      'application/vnd.oci.image.index.v1+json',
      'x',
    ),
    config: fc.record({
      mediaType: fc.constantFrom('application/vnd.oci.image.config.v1+json'),
      digest,
      size: fc.integer(),
    }),
    layers: fc.array(
      fc.record({
        mediaType: fc.constant('application/vnd.oci.image.layer.v1.tar'),
        digest,
        size: fc.integer(),
      }),
      { maxLength: 2 },
    ),
  });
  return fc
    .record({
      method,
      path: pathArb,
      query,
      body: bodyArb(manifest),
      contentType: fc.constantFrom(
        'application/vnd.oci.image.manifest.v1+json',
        'application/vnd.oci.image.index.v1+json',
        'application/vnd.docker.distribution.manifest.v2+json',
        'application/octet-stream',
        'text/plain',
        undefined,
      ),
      range: fc.option(fc.constantFrom('0-0', '0-10', '5-1', 'bytes=0-', 'bytes=-5', '0-999999999', 'x'), {
        nil: undefined,
      }),
      accept: fc.option(fc.constantFrom('application/vnd.oci.image.manifest.v1+json', '*/*', 'text/html'), {
        nil: undefined,
      }),
    })
    .map(({ method: m, path: p, query: q, body, contentType: ct, range, accept }) => {
      const headers: Record<string, string> = {};
      if (ct !== undefined && body !== undefined) headers['content-type'] = ct;
      if (range !== undefined) headers[m === 'GET' ? 'range' : 'content-range'] = range;
      if (accept !== undefined) headers.accept = accept;
      return { method: m, path: p + q, headers, body };
    });
}

// ---------------------------------------------------------------- sending

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function send(
  base: string,
  request: FuzzRequest,
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const url = new URL(base);
  // Raw spaces and non-ASCII cannot be sent in a request line at all: they go percent-encoded.
  const requestPath = request.path.replace(/[^\x21-\x7e]/gu, (c) => encodeURIComponent(c));
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method: request.method,
        path: requestPath,
        agent,
        timeout: 15_000,
        headers: {
          ...request.headers,
          ...(request.body ? { 'content-length': String(request.body.length) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            headers: res.headers,
          }),
        );
        res.on('error', () => resolve({ status: 0, body: 'response aborted', headers: {} }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve({ status: 0, body: error.message, headers: {} }));
    req.end(request.body);
  });
}

const describeRequest = (request: FuzzRequest) =>
  `${request.method} ${request.path} ${JSON.stringify(request.headers)} ${request.body ? JSON.stringify(request.body.toString('utf8').slice(0, 200)) : ''}`;

interface Target {
  readonly name: string;
  readonly url: string;
  readonly process: CliProcess;
  readonly requests: fc.Arbitrary<FuzzRequest>;
  /** A digest of what the server stores. */
  snapshot(): Promise<string>;
  alive(): Promise<boolean>;
  /** Called after each response, e.g. to remember upload sessions. */
  observe?(request: FuzzRequest, status: number, headers: http.IncomingHttpHeaders): void;
  stop(): Promise<void>;
}

const WRITES = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

export async function fuzz(target: Target, count: number, seed: number): Promise<FuzzReport> {
  const statuses: Record<string, number> = {};
  const failures: string[] = [];
  const stateChanges: string[] = [];
  let stateChecks = 0;
  let state = await target.snapshot();
  const started = Date.now();
  const requests = fc.sample(target.requests, { seed, numRuns: count });
  for (const request of requests) {
    const res = await send(target.url, request);
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    target.observe?.(request, res.status, res.headers);
    if (res.status >= 500 || res.status === 0) {
      failures.push(`${res.status} ${describeRequest(request)} -> ${res.body.slice(0, 300)}`);
      if (!(await target.alive())) break;
    }
    if (/\n\s+at .+:\d+:\d+/.test(res.body)) failures.push(`stack trace in ${describeRequest(request)}`);
    if (res.status >= 400 && res.status < 500) {
      stateChecks++;
      const now = await target.snapshot();
      if (now !== state) stateChanges.push(`${res.status} ${describeRequest(request)}`);
      state = now;
    } else if (WRITES.has(request.method) && res.status < 300) {
      state = await target.snapshot();
    }
  }
  return {
    target: target.name,
    requests: requests.length,
    statuses,
    failures,
    stateChanges,
    stateChecks,
    seconds: (Date.now() - started) / 1000,
    alive: await target.alive(),
  };
}

// ---------------------------------------------------------------- targets

export async function catalogTarget(store: 'embedded' | 'mongo'): Promise<Target> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fuzz-catalog-'));
  const env: Record<string, string> =
    store === 'embedded'
      ? { DATA_DIR: dir }
      : { MONGODB_URI: await getMongoUri(), MONGODB_DATABASE: `fuzz_${randomUUID().slice(0, 8)}` };
  // spawnCli refuses every probe target (HEALTH_PROBE_DENY=0.0.0.0/0,::/0): fuzzed URLs are never contacted.
  const cli = spawnCli(['serve'], {
    ...env,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    HEALTH_MONITOR_ENABLED: 'false',
    RATE_LIMIT_PER_SECOND: '0',
    API_TOKENS: `${admin.entry},${reader.entry}`,
    CREDENTIALS_KEYS: `k1:${Buffer.alloc(32, 7).toString('base64')}`,
  });
  const url = String((await cli.waitForLog((line) => line.msg === 'catalog listening', 60_000)).url);
  const auth = { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' };
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`${url}/container_registry`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({
        container_registry_name: `fuzz-${i}`,
        container_registry_public_url: 'http://127.0.0.1:9',
        container_registry_tags: ['prod', `t${i}`],
        container_registry_metadata: { a: i },
        container_registry_config: { credentials: { username: 'u', password: 'p' } },
      }),
    });
    ids.push(((await res.json()) as { data: { id: string } }).data.id);
  }
  return {
    name: `catalog (${store} store)`,
    url,
    process: cli,
    requests: catalogRequests(ids),
    snapshot: async () => {
      const res = await fetch(`${url}/container_registries?limit=1000`, {
        method: 'POST',
        headers: auth,
        body: '{}',
      });
      return createHash('sha256')
        .update(await res.text())
        .digest('hex');
    },
    alive: async () =>
      cli.child.exitCode === null &&
      (await fetch(`${url}/healthz`).then(
        (r) => r.status === 200,
        () => false,
      )),
    stop: async () => {
      cli.child.kill('SIGTERM');
      await cli.exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  const files = entries.filter((entry) => entry.isFile());
  // A temporary file (a proxied blob in flight, an upload's claim) may be gone by the time it is
  // stat'ed: it was never state, so it is left out rather than failing the snapshot.
  const sized = await Promise.all(
    files.map(async (entry) => {
      const full = path.join(entry.parentPath, entry.name);
      const size = await stat(full).then(
        (stats) => stats.size,
        (error: NodeJS.ErrnoException) => {
          if (error.code === 'ENOENT') return undefined;
          throw error;
        },
      );
      return size === undefined ? undefined : `${path.relative(root, full)}:${size}`;
    }),
  );
  return sized.filter((line): line is string => line !== undefined);
}

export async function registryTarget(): Promise<Target> {
  return registryTargetWith(false);
}

/**
 * The registry as a pull-through cache: `fuzz/` maps to a second registry process holding the
 * image as `app`, so every fuzzed read of `fuzz/...` goes through the cache and its upstream.
 */
export async function proxyRegistryTarget(): Promise<Target> {
  return registryTargetWith(true);
}

async function registryTargetWith(proxied: boolean): Promise<Target> {
  const root = await mkdtemp(path.join(tmpdir(), 'fuzz-registry-'));
  const start = async (storage: string, extra: string[]) => {
    const process = spawnCli(
      ['registry', '--host', '127.0.0.1', '--port', '0', '--storage-root', storage, ...extra],
      { LOG_LEVEL: 'info', REGISTRY_MAX_UPLOAD_BYTES: String(1024 * 1024) },
    );
    return {
      process,
      url: String((await process.waitForLog((line) => line.msg === 'registry listening', 60_000)).url),
    };
  };
  const upstream = proxied
    ? await start(path.join(root, '..', `${path.basename(root)}-upstream`), [])
    : undefined;
  const { process: cli, url } = await start(
    root,
    upstream === undefined ? [] : ['--proxy', `fuzz/=${upstream.url}`],
  );
  // One image to read, mutate and refer to (pushed upstream when the fuzzed registry mirrors it).
  const image =
    upstream === undefined
      ? await pushImage(url, 'fuzz/app', 'v1', [Buffer.from('fuzz layer')])
      : await pushImage(upstream.url, 'app', 'v1', [Buffer.from('fuzz layer')]);
  const uploads: string[] = [];
  return {
    name: 'registry',
    url,
    process: cli,
    requests: registryRequests(
      ['fuzz/app', 'fuzz/other', 'library/x'],
      [image.configDigest, ...image.layerDigests, image.digest],
      () => uploads,
    ),
    // What clients can see: blobs and repositories. Upload sessions are excluded: refusing a bad
    // chunk (digest mismatch, too large) discards its session, as the spec says it may.
    snapshot: async () => {
      // Walked per folder: the session files under uploads/ and tmp/ grow with every accepted
      // POST and would make each snapshot slower than the last.
      const visible = await Promise.all(
        [BLOBS_DIR, REPOSITORIES_DIR].map(async (dir) =>
          (await filesUnder(path.join(root, dir))).map((file) => path.join(dir, file)),
        ),
      );
      return visible.flat().sort().join('\n');
    },
    alive: async () =>
      cli.child.exitCode === null &&
      (await fetch(`${url}/v2/`).then(
        (r) => r.status === 200,
        () => false,
      )),
    observe: (_request, status, headers) => {
      const location = headers.location;
      if (status === 202 && typeof location === 'string') {
        const id = /\/blobs\/uploads\/([^/?]+)/.exec(location)?.[1];
        if (id) uploads.unshift(id);
        uploads.length = Math.min(uploads.length, 8);
      }
    },
    stop: async () => {
      cli.child.kill('SIGTERM');
      await cli.exited;
      await rm(root, { recursive: true, force: true });
      if (upstream !== undefined) {
        upstream.process.child.kill('SIGTERM');
        await upstream.process.exited;
        await rm(path.join(root, '..', `${path.basename(root)}-upstream`), { recursive: true, force: true });
      }
    },
  };
}

export function formatReport(report: FuzzReport): string {
  const byClass: Record<string, number> = {};
  for (const [status, n] of Object.entries(report.statuses))
    byClass[`${status[0]}xx`] = (byClass[`${status[0]}xx`] ?? 0) + n;
  const top = Object.entries(report.statuses)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([status, n]) => `${status}:${n}`)
    .join(' ');
  return (
    `${report.target}: ${report.requests} requests in ${report.seconds.toFixed(1)} s ` +
    `(${(report.requests / report.seconds).toFixed(0)} req/s); ${JSON.stringify(byClass)}; top ${top}; ` +
    `5xx or no answer ${report.failures.length}; state checks after rejections ${report.stateChecks}, changed ${report.stateChanges.length}; ` +
    `alive at end ${report.alive}`
  );
}

// ---------------------------------------------------------------- CLI

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values: args } = parseArgs({
    options: {
      requests: { type: 'string', default: '10000' },
      seed: { type: 'string', default: '42' },
      target: { type: 'string', default: 'all' },
    },
  });
  const count = Number(args.requests);
  const seed = Number(args.seed);
  console.log(
    `# HTTP fuzz ${new Date().toISOString()}: ${count} requests per target, seed ${seed}, node ${process.version}`,
  );
  let failed = false;
  const targets: Array<() => Promise<Target>> = [];
  if (args.target === 'all' || args.target === 'catalog-embedded')
    targets.push(() => catalogTarget('embedded'));
  if (args.target === 'all' || args.target === 'catalog-mongo') targets.push(() => catalogTarget('mongo'));
  if (args.target === 'all' || args.target === 'registry') targets.push(registryTarget);
  for (const make of targets) {
    const target = await make();
    try {
      const report = await fuzz(target, count, seed);
      console.log(formatReport(report));
      for (const line of [
        ...report.failures,
        ...report.stateChanges.map((s) => `state changed after ${s}`),
      ].slice(0, 20))
        console.log(`  ${line}`);
      failed ||= report.failures.length > 0 || report.stateChanges.length > 0 || !report.alive;
    } finally {
      await target.stop();
    }
  }
  agent.destroy();
  stopMongoServer();
  process.exit(failed ? 1 : 0);
}

export function closeFuzzAgent(): void {
  agent.destroy();
}
