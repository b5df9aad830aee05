/**
 * Soak and capacity of the catalog as deployed: the real `serve` process (access control on,
 * background monitor probing every registry), under a mixed workload of 70% reads, 20% queries
 * and 10% writes.
 *
 *   npm run bench -- soak [--store embedded|mongo|both] [--minutes 5] [--rate 300] [--mongo-rate 5]
 *                         [--documents 1000] [--mongo-documents 200] [--step-seconds 15]
 *                         [--start-rate 10] [--mongo-start-rate 2]
 *                         [--monitor-interval-ms 30000] [--ferretdb sqlite|postgresql]
 *
 * 1. Soak: `--rate` (embedded) or `--mongo-rate` requests/s for `--minutes`; prints errors,
 *    latency percentiles, RSS of the server at start/end/peak, and the monitor's probes meanwhile.
 * 2. Capacity: the same mix at fixed rates rising by 25% from `--start-rate`, `--step-seconds`
 *    each, until p99 reaches 50 ms (or errors appear, or the rate is not reached); prints the
 *    highest rate that held.
 *
 * The mongo store runs on FerretDB 1.24, so its figures are FerretDB's as much as ours: its SQLite
 * backend (the default here, as in the tests) scans for every _id lookup; its PostgreSQL backend
 * is faster per request but stalled for good under this load once it held 100 PostgreSQL
 * connections (PostgreSQL's default max_connections; bench/README.md). Every server and request
 * stays on loopback: the registries point at a stand-in on 127.0.0.1.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { createToken } from '../../src/catalog/access/tokens.js';
import { startFerretDb, type FerretDbServer } from '../../test/helpers/ferretdb.js';
import { CLI } from '../../test/helpers/spawn-cli.js';
import { formatRow } from '../lib/load.js';

const { values: args } = parseArgs({
  options: {
    store: { type: 'string', default: 'both' },
    minutes: { type: 'string', default: '5' },
    rate: { type: 'string', default: '300' },
    'mongo-rate': { type: 'string', default: '5' },
    'start-rate': { type: 'string', default: '10' },
    'mongo-start-rate': { type: 'string', default: '2' },
    'mongo-documents': { type: 'string', default: '200' },
    documents: { type: 'string', default: '1000' },
    'step-seconds': { type: 'string', default: '15' },
    ferretdb: { type: 'string', default: 'sqlite' },
    'monitor-interval-ms': { type: 'string', default: '30000' },
  },
});
const SOAK_SECONDS = Number(args.minutes) * 60;
const SOAK_RATE = { embedded: Number(args.rate), mongo: Number(args['mongo-rate']) };
const DOCUMENTS = { embedded: Number(args.documents), mongo: Number(args['mongo-documents']) };
const START_RATE = { embedded: Number(args['start-rate']), mongo: Number(args['mongo-start-rate']) };
const STEP_SECONDS = Number(args['step-seconds']);
const TAGS = ['prod', 'dev', 'gpu', 'eu', 'us', 'edge', 'ml', 'web'];
const admin = createToken('bench', 'admin');
const AUTH = { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' };

/** A loopback stand-in for the registries the monitor probes. */
async function registryStandIn(): Promise<{ url: string; close(): void }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, {
      'docker-distribution-api-version': 'registry/2.0',
      'content-type': 'application/json',
    });
    res.end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

interface Catalog {
  readonly url: string;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

async function startCatalog(env: Record<string, string>): Promise<Catalog> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve'], {
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'warn',
      API_TOKENS: admin.entry,
      // One load generator is one client: the per-client limit would measure itself, not the server.
      RATE_LIMIT_PER_SECOND: '0',
      CREDENTIALS_KEYS: `k1:${randomBytes(32).toString('base64')}`,
      HEALTH_MONITOR_ENABLED: args['monitor-interval-ms'] === '0' ? 'false' : 'true',
      HEALTH_MONITOR_INTERVAL_MS:
        args['monitor-interval-ms'] === '0' ? '60000' : args['monitor-interval-ms']!,
      HEALTH_PROBE_ALLOW: '127.0.0.0/8',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr!.pipe(process.stderr);
  // At LOG_LEVEL=warn the "listening" line is not logged: find the port from /proc instead.
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.includes('"level":50')) process.stderr.write(`catalog: ${line}\n`);
  });
  const port = await new Promise<number>((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      const found = listeningPort(child.pid!);
      if (found) {
        clearInterval(poll);
        resolve(found);
      } else if (Date.now() - started > 60_000 || child.exitCode !== null) {
        clearInterval(poll);
        reject(new Error('catalog did not start'));
      }
    }, 100);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** The TCP port a process listens on, from `ss` (the catalog logs nothing at warn level). */
function listeningPort(pid: number): number | undefined {
  const out = spawnSync('ss', ['-Hltnp'], { encoding: 'utf8' }).stdout ?? '';
  for (const line of out.split('\n')) {
    if (!line.includes(`pid=${pid},`)) continue;
    const match = /127\.0\.0\.1:(\d+)/.exec(line);
    if (match) return Number(match[1]);
  }
  return undefined;
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

async function seed(url: string, target: string, documents: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < documents; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, documents - i) }, async (_, j) => {
        const n = i + j;
        const res = await fetch(`${url}/container_registry`, {
          method: 'POST',
          headers: AUTH,
          body: JSON.stringify({
            container_registry_name: `soak-${n}`,
            container_registry_public_url: target,
            container_registry_tags: [TAGS[n % TAGS.length], TAGS[(n * 3 + 1) % TAGS.length]],
            container_registry_metadata: { team: `team-${n % 20}`, n },
          }),
        });
        if (res.status !== 201) throw new Error(`seed: ${res.status} ${await res.text()}`);
        return ((await res.json()) as { data: { id: string } }).data.id;
      }),
    );
    ids.push(...batch);
  }
  return ids;
}

interface RunResult {
  readonly rate: number;
  readonly achieved: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly errors: number;
  readonly byKind: Record<string, number>;
}

/**
 * The 70/20/10 mix at a fixed overall rate, open loop: request i is due at start + i/rate and
 * its latency is measured from that moment, so a server that falls behind shows it in the
 * percentiles (no coordinated omission, unlike a closed-loop generator).
 */
async function mixed(url: string, ids: readonly string[], rate: number, seconds: number): Promise<RunResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const byKind: Record<string, number> = { read: 0, query: 0, write: 0 };
  const latencies: number[] = [];
  const total = Math.round(rate * seconds);
  let errors = 0;
  let writes = 0;
  let sent = 0;
  const { port } = new URL(url);
  const start = performance.now();
  await new Promise<void>((resolve) => {
    let finished = 0;
    const fire = (due: number) => {
      const id = ids[Math.floor(Math.random() * ids.length)]!;
      const roll = Math.random();
      let method = 'GET';
      let path = `/container_registry/${id}`;
      let body: string | undefined;
      if (roll >= 0.9) {
        byKind.write!++;
        method = 'PUT';
        body = JSON.stringify({ $set: { 'container_registry_metadata.soak': ++writes } });
      } else if (roll >= 0.7) {
        byKind.query!++;
        method = 'POST';
        path = '/container_registries?limit=20';
        body = JSON.stringify({
          container_registry_tags: { $in: [TAGS[Math.floor(Math.random() * TAGS.length)]] },
        });
      } else {
        byKind.read!++;
      }
      const done = (ok: boolean) => {
        if (!ok) errors++;
        latencies.push(performance.now() - due);
        if (++finished === total) resolve();
      };
      const req = http.request(
        { host: '127.0.0.1', port, method, path, agent, headers: AUTH, timeout: 10_000 },
        (res) => {
          res.resume();
          res.on('end', () => done((res.statusCode ?? 0) < 300));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => done(false));
      req.end(body);
    };
    const tick = setInterval(() => {
      // Request i is due at start + i/rate: request 0 at once.
      const dueNow = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
      for (; sent < dueNow; sent++) fire(start + (sent * 1000) / rate);
      if (sent === total) clearInterval(tick);
    }, 1);
    // A server that stops answering must not hang the run: what is still open then is an error.
    setTimeout(
      () => {
        clearInterval(tick);
        errors += total - finished;
        resolve();
      },
      (seconds + 30) * 1000,
    ).unref();
  });
  const elapsed = (performance.now() - start) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! * 10) / 10;
  return { rate, achieved: total / elapsed, p50: at(0.5), p99: at(0.99), max: at(1), errors, byKind };
}

async function probesMade(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers: AUTH })).text();
  return [...text.matchAll(/^catalog_probe_duration_seconds_count\{[^}]*\} (\d+)/gm)].reduce(
    (sum, match) => sum + Number(match[1]),
    0,
  );
}

async function benchStore(store: 'embedded' | 'mongo'): Promise<void> {
  const target = await registryStandIn();
  let ferret: FerretDbServer | undefined;
  let pgDatabase: string | undefined;
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-soak-'));
  const env: Record<string, string> = { DATA_DIR: dir };
  if (store === 'mongo') {
    if (args.ferretdb === 'postgresql') {
      pgDatabase = `ferretdb_soak_${Date.now()}`;
      spawnSync('createdb', ['-h', '127.0.0.1', '-U', 'postgres', pgDatabase], { stdio: 'inherit' });
      ferret = await startFerretDb({ postgresqlUrl: `postgres://postgres@127.0.0.1:5432/${pgDatabase}` });
    } else {
      ferret = await startFerretDb();
    }
    Object.assign(env, { MONGODB_URI: ferret.uri, MONGODB_DATABASE: 'soak' });
  }
  const catalog = await startCatalog(env);
  try {
    const seedStart = Date.now();
    const ids = await seed(catalog.url, target.url, DOCUMENTS[store]);
    const label = store === 'mongo' ? `mongo (FerretDB/${args.ferretdb})` : 'embedded';
    console.log(
      `# ${label}: ${ids.length} registries seeded in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`,
    );
    const soakRate = SOAK_RATE[store];
    await mixed(catalog.url, ids, soakRate, 5); // warm-up

    const pid = catalog.child.pid!;
    const rssStart = rssMiB(pid);
    let rssPeak = rssStart;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMiB(pid))), 1000);
    const probesBefore = await probesMade(catalog.url);
    const soak = await mixed(catalog.url, ids, soakRate, SOAK_SECONDS);
    clearInterval(sampler);
    const rssEnd = rssMiB(pid);
    const probes = (await probesMade(catalog.url)) - probesBefore;
    console.log(
      `soak ${label}: ${SOAK_SECONDS} s at ${soakRate} req/s -> ${soak.achieved.toFixed(0)} req/s achieved, ` +
        `${soak.errors} errors, p50 ${soak.p50} ms, p99 ${soak.p99} ms, max ${soak.max} ms; ` +
        `mix ${JSON.stringify(soak.byKind)}; RSS ${rssStart.toFixed(0)} -> ${rssEnd.toFixed(0)} MiB ` +
        `(peak ${rssPeak.toFixed(0)}, growth ${(rssEnd - rssStart).toFixed(1)} MiB); monitor probes meanwhile ${probes}`,
    );

    const widths = [12, 12, 10, 10, 10, 8, 6];
    console.log(
      formatRow(['rate req/s', 'achieved', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'held'], widths),
    );
    let best: RunResult | undefined;
    let rate = START_RATE[store];
    for (let step = 0; step < 40; step++) {
      const run = await mixed(catalog.url, ids, rate, STEP_SECONDS);
      const held = run.p99 < 50 && run.errors === 0 && run.achieved >= rate * 0.95;
      console.log(
        formatRow(
          [rate, run.achieved.toFixed(0), run.p50, run.p99, run.max, run.errors, held ? 'yes' : 'no'],
          widths,
        ),
      );
      if (!held) break;
      best = run;
      rate = Math.ceil(rate * 1.25);
    }
    console.log(
      best
        ? `max sustainable ${label}: ${best.rate} req/s at p99 ${best.p99} ms (< 50 ms, no errors)`
        : `max sustainable ${label}: below ${START_RATE[store]} req/s`,
    );
  } finally {
    await catalog.stop();
    ferret?.stop();
    if (pgDatabase) spawnSync('dropdb', ['-h', '127.0.0.1', '-U', 'postgres', pgDatabase]);
    target.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(
  `# soak bench: node ${process.version}, 2 vCPU shared by load generator and server, mix 70% GET by id / 20% $in query (limit 20) / 10% $set, 32 connections`,
);
for (const store of args.store === 'both'
  ? (['embedded', 'mongo'] as const)
  : [args.store as 'embedded' | 'mongo']) {
  await benchStore(store);
}
