/**
 * The image index at scale: `node --import tsx bench/images/index.ts [--records 1000000]
 * [--store embedded|mongo] [--requests 300] [--connections 16] [--data-dir DIR]`. Bulk-loads `records` image records (10 registries
 * holding the same 100,000 repositories x tags; 20 teams, so `^team-a/` matches 1 in 20; every
 * 10th repository's `v0` an index of two platform images) with `ImageStore.insertMany`, then
 * times sequential requests over HTTP on loopback (keep-alive, one at a time, so a figure is the
 * server's latency): `GET /resolve_image` by reference, by digest, by a child's digest, and
 * `POST /container_images` with `{"repository": {"$regex": "^team-a/"}}`, limit=100. The
 * reference rows are `GET /healthz` on the same server and, first, bare node:http in a process of
 * its own sending a body of a resolve answer's size (the floor here). Prints p50/p99 and RSS.
 *
 * `--connections N` keeps N requests in flight (one keep-alive socket each), as the issue's
 * targets are stated at 16. `--data-dir DIR` (embedded only) keeps the loaded file in DIR and
 * reuses it on the next run with the same `--records`: a 1M load takes a quarter of an hour here,
 * and before/after runs then query the same file. `--serve-process` (with `--data-dir`) times a
 * `serve` process on that file instead of the in-process server, so the client does not share
 * the server's event loop; CPU per request is then the server process's.
 *
 * Each row first runs its own mix for `--warmup-ms` (2000) on other references, untimed.
 * `--only TEXT` runs the reference row and the rows whose label contains TEXT.
 * `--cpu-prof-dir DIR` writes a V8 CPU profile of the `serve` process there when it stops.
 *
 * `--store mongo` runs on a FerretDB 1.24 this bench starts (unless `MONGODB_URI` names a
 * server): `--ferretdb-backend sqlite` (default, as in the tests) or `postgresql`, on a
 * PostgreSQL started for the run in a temp dir on 127.0.0.1 (test/helpers/postgresql.ts; needs
 * Debian's `postgresql` package). RSS is then also reported for FerretDB and PostgreSQL.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createCatalog } from '../../src/catalog/app.js';
import { EmbeddedDatabase } from '../../src/catalog/store/embedded-collection.js';
import { openRepositories } from '../../src/catalog/store/open-stores.js';
import type { SeenImage } from '../../src/catalog/store/image-store.js';
import { createLogger } from '../../src/shared/logger.js';
import { SchemaSet } from '../../src/shared/schemas.js';
import { listen } from '../../src/shared/server.js';
import { openTestStore, type StoreKind } from '../../test/helpers/catalog.js';
import { startFerretDb, type FerretDbServer } from '../../test/helpers/ferretdb.js';
import { freePort } from '../../test/helpers/ports.js';
import { startPostgresql, type PostgresqlServer } from '../../test/helpers/postgresql.js';
import { cpuMs, rssMiB, treePssMiB } from '../lib/process-stats.js';
import { waitForHttp } from '../../test/helpers/registry.js';
import { spawnCli, type CliProcess } from '../../test/helpers/spawn-cli.js';
import { childDigest, imageDigest, isIndex, pick as pickRepository, repositoryName } from './names.js';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' },
    store: { type: 'string', default: 'embedded' },
    requests: { type: 'string', default: '300' },
    connections: { type: 'string', default: '1' },
    'data-dir': { type: 'string' },
    'serve-process': { type: 'boolean', default: false },
    'ferretdb-backend': { type: 'string', default: 'sqlite' },
    'warmup-ms': { type: 'string', default: '2000' },
    'cpu-prof-dir': { type: 'string' },
    only: { type: 'string' },
  },
});
const RECORDS = Number(values.records);
const REQUESTS = Number(values.requests);
const CONNECTIONS = Number(values.connections);
const WARMUP_MS = Number(values['warmup-ms']);
const REGISTRIES = 10;
const TAGS = 10;
const PER_REGISTRY = Math.ceil(RECORDS / REGISTRIES);
const REPOSITORIES = Math.ceil(PER_REGISTRY / TAGS);

function recordAt(registryId: string, host: string, i: number, seenAt: string): SeenImage {
  const r = Math.floor(i / TAGS);
  const t = i % TAGS;
  const repository = repositoryName(r);
  const digest = imageDigest(r, t);
  const index = isIndex(r, t);
  return {
    container_registry_id: registryId,
    repository,
    tag: `v${t}`,
    digest,
    media_type: index
      ? 'application/vnd.oci.image.index.v1+json'
      : 'application/vnd.oci.image.manifest.v1+json',
    platforms: index
      ? [
          { os: 'linux', architecture: 'amd64', digest: childDigest(r, 'amd64') },
          { os: 'linux', architecture: 'arm64', variant: 'v8', digest: childDigest(r, 'arm64') },
        ]
      : [{ os: 'linux', architecture: 'amd64', digest }],
    size: 10_000_000 + i,
    pull_reference: `${host}/${repository}:v${t}`,
    referrers: { signatures: t % 3 === 0 ? 1 : 0, sboms: 0, attestations: 0, other: 0, artifact_types: [] },
    referrers_read_at: seenAt,
    first_seen: seenAt,
    last_seen: seenAt,
    source: 'crawl',
  };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
function request(base: string, method: string, path: string, body?: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      `${base}${path}`,
      {
        method,
        agent,
        headers: payload
          ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
          : {},
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Where a row's requests go: the catalog (default), or the floor server. */
interface Target {
  readonly base: string;
  cpuMs(): number;
}

async function timed(
  label: string,
  next: (n: number) => { method: string; path: string; body?: unknown },
  on: Target = { base, cpuMs: serverCpuMs },
): Promise<{ label: string; p50: number; p99: number; failed: number; perSecond: number; cpuMs: number }> {
  const times: number[] = [];
  let failed = 0;
  // Warm-up: the same mix for WARMUP_MS, on other request numbers than the timed ones (other
  // references: the timed rows do not find their own pages already touched), so a row does not
  // pay the previous row's switch of code paths and pages.
  let warming = REQUESTS;
  const warmEnd = performance.now() + WARMUP_MS;
  const warm = async () => {
    while (performance.now() < warmEnd) {
      const { method, path, body } = next(warming++);
      await request(on.base, method, path, body);
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, warm));
  let issued = 0;
  // CONNECTIONS loops, each sending its next request when its last one is answered.
  const loop = async () => {
    for (let n = issued++; n < REQUESTS; n = issued++) {
      const { method, path, body } = next(n);
      const start = performance.now();
      const status = await request(on.base, method, path, body);
      times.push(performance.now() - start);
      // Counted, not fatal: FerretDB answers some within the query time limit only (500 past it).
      if (status !== 200) failed++;
    }
  };
  const started = performance.now();
  const cpuBefore = on.cpuMs();
  await Promise.all(Array.from({ length: CONNECTIONS }, loop));
  const perSecond = REQUESTS / ((performance.now() - started) / 1000);
  // CPU per request of the server (with the in-process server, of client and server together),
  // less the reference row's, is what the route costs beyond an HTTP round trip, and moves far
  // less with the machine's load than latency.
  const cpuMs = (on.cpuMs() - cpuBefore) / REQUESTS;
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return { label, p50: at(0.5), p99: at(0.99), failed, perSecond, cpuMs };
}

/**
 * The floor of an answer over HTTP on this machine: bare node:http in a process of its own,
 * sending a body the size of a resolve answer (10 candidates) with as many headers as the
 * catalog sends. What a row costs above it is the catalog's.
 */
async function startFloorServer(): Promise<Target & { stop(): void }> {
  const script = `
    const candidate = (i) => ({ container_registry_id: '00000000-0000-4000-8000-00000000000' + i,
      container_registry_name: 'mirror-' + i, pull_reference: 'mirror-' + i + '.example.test/team-a/app-1:v1',
      digest: 'sha256:' + 'a'.repeat(64), status: null, latency_ms: null, last_seen: new Date().toISOString() });
    const body = JSON.stringify({ success: true, data: { reference: 'team-a/app-1:v1',
      candidates: Array.from({ length: 10 }, (_, i) => candidate(i)) } });
    const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) };
    for (let i = 0; i < 13; i++) headers['x-header-' + i] = 'v'.repeat(48);
    require('node:http')
      .createServer((req, res) => {
        res.writeHead(200, { ...headers, 'x-request-id': require('node:crypto').randomUUID() });
        res.end(body);
      })
      .listen(0, '127.0.0.1', function () { console.log(this.address().port); });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (line: Buffer) => resolve(Number(String(line))));
    child.once('error', reject);
  });
  return { base: `http://127.0.0.1:${port}`, cpuMs: () => cpuMs(child.pid!), stop: () => child.kill() };
}

/** The `serve` process when `--serve-process` runs one. */
let served: CliProcess | undefined;

/** CPU time in ms of the server: the `serve` process, else this one (client and server). */
function serverCpuMs(): number {
  if (served?.child.pid !== undefined) return cpuMs(served.child.pid);
  const cpu = process.cpuUsage();
  return (cpu.user + cpu.system) / 1000;
}

/** Resident memory of the server process in MiB, and the part that is not mapped file pages. */
function serverRss(): string {
  const pid = served?.child.pid ?? process.pid;
  return `${Math.round(rssMiB(pid))} MiB (anonymous ${Math.round(rssMiB(pid, 'RssAnon'))})`;
}

const dataDir = values['data-dir'];
const backend = values['ferretdb-backend'];
if (backend !== 'sqlite' && backend !== 'postgresql') throw new Error('--ferretdb-backend sqlite|postgresql');
// The FerretDB (and PostgreSQL) of a mongo run, started here so their memory can be reported.
let ferretDb: FerretDbServer | undefined;
let postgresql: PostgresqlServer | undefined;
if (values.store === 'mongo' && !process.env.MONGODB_URI) {
  if (backend === 'postgresql') {
    postgresql = await startPostgresql();
    postgresql.createDatabase('ferretdb');
  }
  ferretDb = await startFerretDb(postgresql ? { postgresqlUrl: postgresql.url('ferretdb') } : {});
  process.env.MONGODB_URI = ferretDb.uri;
}
const storeLabel = ferretDb ? `mongo (FerretDB 1.24 on ${backend})` : values.store;
const opened =
  dataDir && values.store === 'embedded'
    ? {
        ...(await openRepositories(await EmbeddedDatabase.open(dataDir), 'registries', '')),
        cleanup: async () => {},
      }
    : await openTestStore(values.store as StoreKind);
const reused = dataDir !== undefined && (await opened.imageStore.count({})) === RECORDS;
const catalog = createCatalog({
  store: opened.store,
  schemas: new SchemaSet(),
  logger: createLogger('bench', (process.env.BENCH_LOG_LEVEL ?? 'silent') as 'silent'),
  bodyLimitBytes: 1 << 20,
  images: {
    store: opened.imageStore,
    crawl: () => Promise.reject(new Error('no crawls in this benchmark')),
  },
});
const server = await listen(catalog.handler, { host: '127.0.0.1', port: 0 });
let base = server.url;
try {
  const registryIds: string[] = [];
  for (let k = 0; k < REGISTRIES && !reused; k++) {
    const created = await opened.store.create({
      container_registry_id: `00000000-0000-4000-8000-${String(k).padStart(12, '0')}`,
      container_registry_name: `mirror-${k}`,
      container_registry_public_url: `https://mirror-${k}.example.test`,
      container_registry_image_prefix: '',
      container_registry_description: '',
      container_registry_config: {},
      container_registry_created_at: new Date().toISOString(),
      container_registry_updated_at: new Date().toISOString(),
    } as never);
    registryIds.push((created.document as { container_registry_id: string }).container_registry_id);
  }
  // A bulk load's index inserts (random digests) need more than the store's 32 MB page cache to
  // stay off the disk (1M records: 184 s with it, 943 s recorded without, at another load); the
  // queries below run with the store's own.
  if (opened.database instanceof EmbeddedDatabase && !reused)
    opened.database.db.pragma('cache_size = -1048576');
  const loadStart = performance.now();
  const seenAt = new Date().toISOString();
  let loaded = reused ? RECORDS : 0;
  for (let k = 0; k < REGISTRIES && !reused; k++)
    for (let start = 0; start < PER_REGISTRY && loaded < RECORDS; start += 10_000) {
      const batch: SeenImage[] = [];
      for (let i = start; i < Math.min(PER_REGISTRY, start + 10_000) && loaded + batch.length < RECORDS; i++)
        batch.push(recordAt(registryIds[k]!, `mirror-${k}.example.test`, i, seenAt));
      loaded += await opened.imageStore.insertMany(batch);
    }
  const loadSeconds = (performance.now() - loadStart) / 1000;
  if (opened.database instanceof EmbeddedDatabase) {
    opened.database.db.pragma('cache_size = -32768');
    opened.database.checkpoint();
    // The planner statistics the store refreshes at open and every 10 minutes.
    opened.database.optimize();
  }
  if (values['serve-process'] && opened.database instanceof EmbeddedDatabase) {
    await server.close(0);
    await opened.database.close();
    // A port chosen here, and no info logs: the access log would be part of what is timed.
    const port = await freePort();
    const profile = values['cpu-prof-dir'];
    served = spawnCli(
      ['serve'],
      {
        HOST: '127.0.0.1',
        PORT: String(port),
        DATA_DIR: dataDir!,
        LOG_LEVEL: 'warn',
        RATE_LIMIT_PER_SECOND: '0',
        HEALTH_MONITOR_ENABLED: 'false',
        CRAWL_ENABLED: 'false',
        HEARTBEAT_WATCH_ENABLED: 'false',
      },
      profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profile],
    );
    base = `http://127.0.0.1:${port}`;
    await waitForHttp(`${base}/healthz`, 120_000);
  }
  const rssAfterLoad = serverRss();
  const backendRss = () =>
    ferretDb
      ? `; FerretDB ${Math.round(rssMiB(ferretDb.pid))} MiB` +
        (postgresql
          ? `, PostgreSQL (PSS of all its processes) ${Math.round(treePssMiB(postgresql.pid))} MiB`
          : '')
      : '';
  const backendRssAfterLoad = backendRss();

  const pick = (n: number) => pickRepository(n, REPOSITORIES);
  type Next = Parameters<typeof timed>[1];
  const mixes: Array<[string, Next]> = [
    ['GET /healthz (reference)', () => ({ method: 'GET', path: '/healthz' })],
    [
      'resolve by reference',
      (n) => ({
        method: 'GET',
        path: `/resolve_image?reference=${encodeURIComponent(`${repositoryName(pick(n))}:v${n % TAGS}`)}`,
      }),
    ],
    [
      'resolve by digest',
      (n) => ({ method: 'GET', path: `/resolve_image?digest=${imageDigest(pick(n), n % TAGS)}` }),
    ],
    [
      'resolve repo@digest',
      (n) => ({
        method: 'GET',
        path: `/resolve_image?reference=${encodeURIComponent(`${repositoryName(pick(n))}@${imageDigest(pick(n), n % TAGS)}`)}`,
      }),
    ],
    [
      'resolve by child digest',
      (n) => {
        const r = pick(n) - (pick(n) % 10);
        return { method: 'GET', path: `/resolve_image?digest=${childDigest(r, n % 2 ? 'amd64' : 'arm64')}` };
      },
    ],
    [
      'POST ^team-a/ limit=100',
      (n) => ({
        method: 'POST',
        path: `/container_images?limit=100&skip=${(n % 5) * 100}`,
        body: { repository: { $regex: '^team-a/' } },
      }),
    ],
  ];
  const floorServer = await startFloorServer();
  const floor = await timed('bare node:http (floor)', () => ({ method: 'GET', path: '/' }), floorServer);
  floorServer.stop();
  const only = values.only;
  const rows = [];
  for (const [label, next] of mixes)
    if (only === undefined || label === mixes[0]![0] || label.includes(only))
      rows.push(await timed(label, next));
  const rssAfter = serverRss();
  const reference = rows[0]!.p50;
  console.log(
    `# image index bench: ${loaded} records (${REGISTRIES} registries x ${REPOSITORIES} repositories x ${TAGS} tags), store ${storeLabel}, node ${process.version}`,
  );
  console.log(
    reused
      ? `reused the records in ${path.resolve(dataDir!)}`
      : `bulk load ${loadSeconds.toFixed(1)} s (${Math.round(loaded / loadSeconds)} records/s)`,
  );
  console.log(`${CONNECTIONS} connection(s), ${REQUESTS} requests per row after ${WARMUP_MS} ms of warm-up`);
  console.log(
    'row                          p50 ms   p99 ms   p50 / healthz p50   failed   req/s   CPU ms/req   CPU - healthz',
  );
  for (const row of [floor, ...rows])
    console.log(
      `${row.label.padEnd(28)} ${row.p50.toFixed(2).padStart(6)}   ${row.p99.toFixed(2).padStart(6)}   ${(row.p50 / reference).toFixed(1).padStart(17)}   ${String(row.failed).padStart(6)}   ${row.perSecond.toFixed(0).padStart(5)}   ${row.cpuMs.toFixed(2).padStart(10)}   ${(row.cpuMs - rows[0]!.cpuMs).toFixed(2).padStart(13)}`,
    );
  console.log(
    `RSS after load ${rssAfterLoad}${backendRssAfterLoad}; after the queries ${rssAfter}${backendRss()}`,
  );
} finally {
  agent.destroy();
  if (served !== undefined) {
    served.child.kill('SIGTERM');
    await served.exited;
  } else {
    await server.close(0);
    await opened.cleanup();
  }
  ferretDb?.stop();
  postgresql?.stop();
}
