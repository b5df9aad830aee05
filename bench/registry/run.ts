/**
 * Registry benchmark: the same streaming HTTP client against our registry and CNCF Distribution
 * (Debian `docker-registry`), each a separate process with filesystem storage in a temp dir on
 * the same disk, in one run. curl streams the big blobs so the client is never the bottleneck. Prints MB/s for a 256 MB single-layer push and pull, a 50-layer
 * image push and pull, manifest GET by tag (16 connections: requests/s and p99), the physical
 * floor (sha256sum and cp of the same 256 MB), and peak RSS while a 1 GB blob is pushed.
 *
 *   npm run bench -- registry [--size-mb 256] [--big-mb 1024] [--rounds 3] [--duration 5]
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import autocannon from 'autocannon';
import { percentile } from '../../test/helpers/percentile.js';
import { spawnRegistry, startDistribution } from '../../test/helpers/registry.js';
import { curlPull, curlPush } from '../lib/curl.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}
const SIZE_MB = option('size-mb', 256);
const BIG_MB = option('big-mb', 1024);
const ROUNDS = option('rounds', 3);
const DURATION = option('duration', 5);
const SMALL_LAYERS = 50;
const SMALL_LAYER_BYTES = 256 * 1024;
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

interface Target {
  readonly label: string;
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

async function startOurs(): Promise<Target> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-ours-'));
  const registry = await spawnRegistry(dir);
  return {
    label: 'ours',
    url: registry.url,
    pid: registry.cli.child.pid!,
    stop: async () => {
      await registry.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

async function startReference(): Promise<Target> {
  const distribution = await startDistribution({ inMemoryCache: true });
  return { label: 'distribution', url: distribution.url, pid: distribution.pid, stop: distribution.stop };
}

function request(
  url: string,
  method: string,
  headers: Record<string, string | number> = {},
  body?: Readable | Buffer,
  sink?: (chunk: Buffer) => void,
): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent });
    req.on('error', reject);
    req.on('response', (res) => {
      res.on('data', (chunk: Buffer) => sink?.(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      res.on('error', reject);
    });
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else pipeline(body, req).catch(reject);
  });
}

/** The client flow of skopeo/containers-image: POST, one streamed PATCH, PUT ?digest=. */
async function pushBlob(base: string, name: string, body: () => Readable, digest?: string): Promise<string> {
  const started = await request(`${base}/v2/${name}/blobs/uploads/`, 'POST', { 'Content-Length': 0 });
  if (started.status !== 202) throw new Error(`POST ${started.status}`);
  const hash = createHash('sha256');
  const source = body();
  if (digest === undefined) source.on('data', (chunk: Buffer) => hash.update(chunk));
  const patched = await request(
    new URL(String(started.headers.location), base).href,
    'PATCH',
    { 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' },
    source,
  );
  if (patched.status !== 202) throw new Error(`PATCH ${patched.status}`);
  const finalDigest = digest ?? `sha256:${hash.digest('hex')}`;
  const url = new URL(String(patched.headers.location), base);
  url.searchParams.set('digest', finalDigest);
  const put = await request(url.href, 'PUT', { 'Content-Length': 0 });
  if (put.status !== 201) throw new Error(`PUT ${put.status}`);
  return finalDigest;
}

async function pushManifest(
  base: string,
  name: string,
  tag: string,
  config: { digest: string; size: number },
  layers: { digest: string; size: number }[],
): Promise<void> {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: layers.map((layer) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer })),
    }),
  );
  const put = await request(
    `${base}/v2/${name}/manifests/${tag}`,
    'PUT',
    { 'Content-Type': OCI_MANIFEST, 'Content-Length': manifest.length },
    manifest,
  );
  if (put.status !== 201) throw new Error(`manifest PUT ${put.status}`);
}

async function pullBlob(base: string, name: string, digest: string): Promise<number> {
  let bytes = 0;
  const response = await request(
    `${base}/v2/${name}/blobs/${digest}`,
    'GET',
    {},
    undefined,
    (chunk) => (bytes += chunk.length),
  );
  if (response.status !== 200) throw new Error(`GET blob ${response.status}`);
  return bytes;
}

/** Current resident set size of a process (Linux VmRSS), in MiB. */
function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const median = (values: number[]) => percentile(values, 50);

async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** A repeating 1 MiB random pattern: unlimited bytes at memory speed, not compressible per MiB. */
function patternStream(totalBytes: number): () => Readable {
  const block = randomBytes(1024 * 1024);
  return () =>
    Readable.from(
      (function* () {
        for (let sent = 0; sent < totalBytes; sent += block.length)
          yield block.subarray(0, Math.min(block.length, totalBytes - sent));
      })(),
    );
}

interface Figures {
  pushMBs: number;
  pullMBs: number;
  smallPushS: number;
  smallPullS: number;
  manifestRps: number;
  manifestP99: number;
  bigPushMBs: number;
  peakRssMb: number;
  idleRssMb: number;
}

/** Flushes dirty pages so one target's writeback never slows the next target's measurement. */
function settle(): void {
  execFileSync('sync');
}

/** Runs `fn` for both targets, alternating which goes first each round; returns per-target medians. */
async function interleaved(
  targets: readonly [Target, Target],
  fn: (target: Target, round: number) => Promise<number>,
): Promise<[number, number]> {
  const values: [number[], number[]] = [[], []];
  for (let round = 0; round < ROUNDS; round += 1) {
    const order = round % 2 === 0 ? [0, 1] : [1, 0];
    for (const index of order) {
      settle();
      values[index]!.push(await fn(targets[index]!, round));
    }
  }
  return [median(values[0]), median(values[1])];
}

async function measure(
  targets: readonly [Target, Target],
  layer: LayerFile,
  big: LayerFile,
  smallLayers: Buffer[],
): Promise<[Figures, Figures]> {
  const push = await interleaved(
    targets,
    async (target, round) =>
      SIZE_MB / (await timed(() => curlPush(target.url, `bench/big${round}`, layer.file, layer.digest))),
  );
  const pull = await interleaved(
    targets,
    async (target, round) =>
      SIZE_MB / (await timed(() => curlPull(target.url, `bench/big${round}`, layer.digest))),
  );
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const smallPush = await interleaved(targets, (target, round) => {
    const name = `bench/small${round}`;
    const layers: { digest: string; size: number }[] = [];
    return timed(async () => {
      const configDigest = await pushBlob(target.url, name, () => Readable.from([config]));
      await inParallel(smallLayers, 4, async (small) => {
        layers.push({
          digest: await pushBlob(target.url, name, () => Readable.from([small])),
          size: small.length,
        });
      });
      await pushManifest(target.url, name, 'v1', { digest: configDigest, size: config.length }, layers);
    });
  });
  const smallPull = await interleaved(targets, (target, round) => {
    const name = `bench/small${round}`;
    return timed(async () => {
      const manifest = await fetch(`${target.url}/v2/${name}/manifests/v1`, {
        headers: { Accept: OCI_MANIFEST },
      });
      const parsed = (await manifest.json()) as { layers: { digest: string }[] };
      await inParallel(parsed.layers, 4, (small) => pullBlob(target.url, name, small.digest));
    });
  });
  const figures: Figures[] = [];
  for (const [index, target] of targets.entries()) {
    settle();
    const cannon = await autocannon({
      url: `${target.url}/v2/bench/small0/manifests/v1`,
      connections: 16,
      duration: DURATION,
      headers: { accept: OCI_MANIFEST },
    });
    if (cannon.non2xx > 0 || cannon.errors > 0) throw new Error(`${target.label}: manifest GET errors`);
    settle();
    const idleRssMb = rssMb(target.pid);
    let peak = idleRssMb;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(target.pid))), 20);
    const bigSeconds = await timed(() => curlPush(target.url, 'bench/huge', big.file, big.digest));
    clearInterval(sampler);
    figures.push({
      pushMBs: push[index]!,
      pullMBs: pull[index]!,
      smallPushS: smallPush[index]!,
      smallPullS: smallPull[index]!,
      manifestRps: cannon.requests.average,
      manifestP99: cannon.latency.p99,
      bigPushMBs: BIG_MB / bigSeconds,
      peakRssMb: Math.max(peak, rssMb(target.pid)),
      idleRssMb,
    });
  }
  return [figures[0]!, figures[1]!];
}

interface LayerFile {
  readonly file: string;
  readonly digest: string;
}

/** Writes `mb` MiB of pattern bytes to `file`; the sha256sum run doubles as the hashing floor. */
async function makeLayer(file: string, mb: number): Promise<LayerFile & { sha256sumSeconds: number }> {
  await pipeline(patternStream(mb * 1024 * 1024)(), (await fs.open(file, 'w')).createWriteStream());
  execFileSync('sync');
  let output = '';
  const sha256sumSeconds = await timed(async () => (output = execFileSync('sha256sum', [file]).toString()));
  return { file, digest: `sha256:${output.split(' ')[0]}`, sha256sumSeconds };
}

async function main(): Promise<void> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-registry-'));
  const layer = await makeLayer(path.join(work, 'layer.bin'), SIZE_MB);
  const big = await makeLayer(path.join(work, 'big.bin'), BIG_MB);
  const shaTimes = [layer.sha256sumSeconds];
  for (let i = 1; i < ROUNDS; i += 1)
    shaTimes.push(await timed(async () => execFileSync('sha256sum', [layer.file])));
  const sha = median(shaTimes);
  const file = layer.file;
  const copies: number[] = [];
  for (let i = 0; i < ROUNDS; i += 1) {
    copies.push(await timed(async () => execFileSync('cp', [file, path.join(work, `copy${i}.bin`)])));
    await fs.rm(path.join(work, `copy${i}.bin`));
  }
  const copySync = await timed(async () => {
    execFileSync('cp', [file, path.join(work, 'copy-sync.bin')]);
    execFileSync('sync', [path.join(work, 'copy-sync.bin')]);
  });
  const smallLayers = Array.from({ length: SMALL_LAYERS }, () => randomBytes(SMALL_LAYER_BYTES));

  const distribution = await startReference();
  const ours = await startOurs();
  let d: Figures;
  let o: Figures;
  try {
    [o, d] = await measure([ours, distribution], layer, big, smallLayers);
  } finally {
    await distribution.stop();
    await ours.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
  const cpus = os.cpus();
  console.log(
    `registry bench: ${cpus.length} x ${cpus[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString()}`,
  );
  console.log(
    `medians of ${ROUNDS} rounds; ${SMALL_LAYERS} small layers of ${SMALL_LAYER_BYTES / 1024} KiB pushed/pulled 4 at a time; manifest GET ${DURATION}s x 16 connections`,
  );
  console.log(
    `floor (${SIZE_MB} MB on this disk): sha256sum ${(SIZE_MB / sha).toFixed(0)} MB/s, cp ${(SIZE_MB / median(copies)).toFixed(0)} MB/s, cp+sync ${(SIZE_MB / copySync).toFixed(0)} MB/s`,
  );
  const rows: [string, string, string, string, string][] = [
    ['figure', 'ours', 'distribution', 'ratio', 'target'],
    [
      `push ${SIZE_MB} MB layer (MB/s)`,
      o.pushMBs.toFixed(0),
      d.pushMBs.toFixed(0),
      (o.pushMBs / d.pushMBs).toFixed(2),
      '>= 0.9',
    ],
    [
      `pull ${SIZE_MB} MB layer (MB/s)`,
      o.pullMBs.toFixed(0),
      d.pullMBs.toFixed(0),
      (o.pullMBs / d.pullMBs).toFixed(2),
      '>= 1.0',
    ],
    [
      `push ${SMALL_LAYERS}-layer image (s)`,
      o.smallPushS.toFixed(3),
      d.smallPushS.toFixed(3),
      (d.smallPushS / o.smallPushS).toFixed(2),
      '>= 0.9',
    ],
    [
      `pull ${SMALL_LAYERS}-layer image (s)`,
      o.smallPullS.toFixed(3),
      d.smallPullS.toFixed(3),
      (d.smallPullS / o.smallPullS).toFixed(2),
      '>= 1.0',
    ],
    [
      'manifest GET by tag (req/s)',
      o.manifestRps.toFixed(0),
      d.manifestRps.toFixed(0),
      (o.manifestRps / d.manifestRps).toFixed(2),
      '>= 0.8',
    ],
    ['manifest GET p99 (ms)', String(o.manifestP99), String(d.manifestP99), '', ''],
    [
      `push ${BIG_MB} MB blob (MB/s)`,
      o.bigPushMBs.toFixed(0),
      d.bigPushMBs.toFixed(0),
      (o.bigPushMBs / d.bigPushMBs).toFixed(2),
      '',
    ],
    ['RSS before the big push (MiB)', o.idleRssMb.toFixed(0), d.idleRssMb.toFixed(0), '', ''],
    [`peak RSS during ${BIG_MB} MB push (MiB)`, o.peakRssMb.toFixed(0), d.peakRssMb.toFixed(0), '', 'flat'],
  ];
  for (const row of rows)
    console.log(`| ${row.map((cell, i) => cell.padEnd(i === 0 ? 34 : 12)).join(' | ')} |`);
  console.log(
    'ratio: ours/distribution for throughput and req/s, distribution/ours for durations (higher is better for us)',
  );
}

await main();
