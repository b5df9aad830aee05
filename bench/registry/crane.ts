/**
 * Registry benchmark against CNCF Distribution 3.1.2 (`go install`ed, see test/helpers/go-tools.ts)
 * with crane as the client, in one run: push and pull of a one-layer image of `--size-mb` (256)
 * and of a 50-layer image (256 KiB layers), on the filesystem and on S3 (gofakes3 on loopback, our
 * S3 driver against Distribution's `s3-aws`). Per row: MiB/s (or seconds), the server's CPU time
 * per MiB moved (from /proc/<pid>/stat), and the server's peak RSS during the big push.
 *
 *   node --import tsx bench/registry/crane.ts [--size-mb 256] [--rounds 3] [--only fs|s3] [--cpu-prof DIR]
 *          [--per-round] [--node-args '<flags>']
 *
 * `--node-args '<flags>'` replaces the Node flags our server runs with (A/B runs of V8 flags).
 * `--per-round` also prints every big push: MiB/s, user and system CPU ms/MiB, minor faults/MiB.
 * `--cpu-prof DIR` runs our registry under `node --cpu-prof` and leaves its profile in DIR.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, openSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { installGoTool } from '../../test/helpers/go-tools.js';
import { freePort } from '../../test/helpers/ports.js';
import { startChild, waitForHttp, type ChildHandle } from '../../test/helpers/registry.js';
import { startS3Server, S3_TEST_CREDENTIALS, type TestS3Server } from '../../test/helpers/s3-server.js';
import { spawnCli, type CliProcess } from '../../test/helpers/spawn-cli.js';
import { cpuMs, cpuTimes, rssMiB } from '../lib/process-stats.js';

const { values: args } = parseArgs({
  options: {
    'size-mb': { type: 'string', default: '256' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string' },
    'cpu-prof': { type: 'string' },
    'per-round': { type: 'boolean', default: false },
    // Extra Node flags for our server, for A/B runs (e.g. `--node-args=--single-threaded-gc`).
    'node-args': { type: 'string', default: '' },
  },
});
const SIZE_MB = Number(args['size-mb']);
const ROUNDS = Number(args.rounds);
const SMALL_LAYERS = 50;
const SMALL_LAYER_BYTES = 256 * 1024;
const crane = installGoTool('crane');

interface Server {
  readonly label: string;
  /** What the server printed (its failure, when a measurement fails). */
  output(): string;
  readonly host: string;
  readonly pid: number;
  stop(): Promise<void>;
}

function run(command: string, argv: string[], stdout: 'ignore' | number = 'ignore'): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ['ignore', stdout, 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${argv.join(' ')}: ${stderr}`)),
    );
  });
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** An OCI layout with one image of `layers` (random, uncompressed "tar" media type). */
async function writeLayout(dir: string, layers: Buffer[] | { file: string; size: number; hex: string }[]) {
  await fs.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const descriptors = [];
  for (const layer of layers) {
    if (Buffer.isBuffer(layer)) {
      const hex = sha256(layer);
      await fs.writeFile(path.join(dir, 'blobs', 'sha256', hex), layer);
      descriptors.push({
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: `sha256:${hex}`,
        size: layer.length,
      });
    } else {
      await fs.rename(layer.file, path.join(dir, 'blobs', 'sha256', layer.hex));
      descriptors.push({
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: `sha256:${layer.hex}`,
        size: layer.size,
      });
    }
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: descriptors.map((d) => d.digest) },
    }),
  );
  await fs.writeFile(path.join(dir, 'blobs', 'sha256', sha256(config)), config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: `sha256:${sha256(config)}`,
        size: config.length,
      },
      layers: descriptors,
    }),
  );
  await fs.writeFile(path.join(dir, 'blobs', 'sha256', sha256(manifest)), manifest);
  await fs.writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await fs.writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: `sha256:${sha256(manifest)}`,
          size: manifest.length,
        },
      ],
    }),
  );
  return descriptors.map((d) => d.digest);
}

/** A random layer of `mb` MiB written to `file` without holding it in memory; returns its digest. */
async function bigLayer(file: string, mb: number): Promise<{ file: string; size: number; hex: string }> {
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  for (let i = 0; i < mb; i += 1) {
    const chunk = randomBytes(1024 * 1024);
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  return { file, size: mb * 1024 * 1024, hex: hash.digest('hex') };
}

async function startOurs(env: Record<string, string>): Promise<Server> {
  const cli: CliProcess = spawnCli(
    ['registry', '--host', '127.0.0.1', '--port', '0'],
    { LOG_LEVEL: 'info', ...env },
    [
      ...args['node-args'].split(' ').filter(Boolean),
      ...(args['cpu-prof'] === undefined
        ? []
        : ['--cpu-prof', `--cpu-prof-dir=${path.resolve(args['cpu-prof'])}`]),
    ],
  );
  const line = await cli.waitForLog((entry) => entry.msg === 'registry listening', 30_000);
  const url = new URL(String(line.url));
  return {
    label: 'ours',
    output: () => cli.stderr(),
    host: url.host,
    pid: cli.child.pid!,
    stop: async () => {
      cli.child.kill('SIGTERM');
      await cli.exited;
    },
  };
}

async function startDistribution3(storage: string): Promise<Server> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-distribution3-'));
  const port = await freePort();
  const config = path.join(dir, 'config.yml');
  await fs.writeFile(
    config,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  delete:\n    enabled: true\n  redirect:\n    disable: true\n${storage.replaceAll('<dir>', dir)}\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const handle: ChildHandle = startChild(installGoTool('registry'), ['serve', config], {
    PATH: process.env.PATH ?? '',
    OTEL_TRACES_EXPORTER: 'none',
  });
  await waitForHttp(`http://127.0.0.1:${port}/v2/`);
  return {
    label: 'distribution 3.1.2',
    output: () => handle.output(),
    host: `127.0.0.1:${port}`,
    pid: handle.child.pid!,
    stop: async () => {
      await handle.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

interface Figures {
  pushMiBs: number[];
  pushCpuMsPerMiB: number[];
  pullMiBs: number[];
  pullCpuMsPerMiB: number[];
  smallPushS: number[];
  smallPullS: number[];
  peakRssMiB: number;
  idleRssMiB: number;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1] ?? NaN;

async function measure(
  server: Server,
  round: number,
  big: string,
  bigDigest: string,
  small: string,
  work: string,
  figures: Figures,
) {
  const ref = (repo: string) => `${server.host}/bench/${repo}:r${round}`;
  // Flush dirty pages first: one server's writeback (Distribution does not fsync) must not land
  // in the other's fsync, as in bench/registry/run.ts.
  execFileSync('sync');
  figures.idleRssMiB = Math.max(figures.idleRssMiB, rssMiB(server.pid));
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(server.pid))), 25);
  const before = cpuTimes(server.pid);
  let started = performance.now();
  try {
    await run(crane, ['--insecure', 'push', big, ref(`big${round}`)]);
  } finally {
    clearInterval(sampler);
  }
  let seconds = (performance.now() - started) / 1000;
  const after = cpuTimes(server.pid);
  figures.peakRssMiB = Math.max(figures.peakRssMiB, peak);
  figures.pushMiBs.push(SIZE_MB / seconds);
  figures.pushCpuMsPerMiB.push((after.userMs + after.systemMs - before.userMs - before.systemMs) / SIZE_MB);
  if (args['per-round']) {
    const perMiB = (a: number, b: number) => ((a - b) / SIZE_MB).toFixed(2);
    console.log(
      `# round ${round} ${server.label}: push ${(SIZE_MB / seconds).toFixed(0)} MiB/s, user ${perMiB(after.userMs, before.userMs)} + system ${perMiB(after.systemMs, before.systemMs)} ms/MiB, ${perMiB(after.minorFaults, before.minorFaults)} minor faults/MiB, load ${os.loadavg()[0]!.toFixed(1)}`,
    );
  }

  const devNull = openSync('/dev/null', 'w');
  const cpu = cpuMs(server.pid);
  started = performance.now();
  await run(crane, ['--insecure', 'blob', `${server.host}/bench/big${round}@${bigDigest}`], devNull);
  seconds = (performance.now() - started) / 1000;
  figures.pullMiBs.push(SIZE_MB / seconds);
  figures.pullCpuMsPerMiB.push((cpuMs(server.pid) - cpu) / SIZE_MB);

  started = performance.now();
  await run(crane, ['--insecure', 'push', small, ref(`small${round}`)]);
  figures.smallPushS.push((performance.now() - started) / 1000);
  const out = path.join(work, `pulled-${server.label.replaceAll(' ', '-')}-${round}`);
  started = performance.now();
  await run(crane, ['--insecure', 'pull', '--format', 'oci', ref(`small${round}`), out]);
  figures.smallPullS.push((performance.now() - started) / 1000);
  await fs.rm(out, { recursive: true, force: true });
  execFileSync('sync');
}

function table(title: string, ours: Figures, theirs: Figures): string {
  const rows: [string, number, number, 'higher' | 'lower', number][] = [
    [`push ${SIZE_MB} MiB layer (MiB/s)`, median(ours.pushMiBs), median(theirs.pushMiBs), 'higher', 0],
    [
      '  server CPU per MiB pushed (ms)',
      median(ours.pushCpuMsPerMiB),
      median(theirs.pushCpuMsPerMiB),
      'lower',
      2,
    ],
    [`pull ${SIZE_MB} MiB layer (MiB/s)`, median(ours.pullMiBs), median(theirs.pullMiBs), 'higher', 0],
    [
      '  server CPU per MiB pulled (ms)',
      median(ours.pullCpuMsPerMiB),
      median(theirs.pullCpuMsPerMiB),
      'lower',
      2,
    ],
    [`push ${SMALL_LAYERS}-layer image (s)`, median(ours.smallPushS), median(theirs.smallPushS), 'lower', 3],
    [`pull ${SMALL_LAYERS}-layer image (s)`, median(ours.smallPullS), median(theirs.smallPullS), 'lower', 3],
    ['RSS before pushing (MiB)', ours.idleRssMiB, theirs.idleRssMiB, 'lower', 0],
    ['peak RSS during big push (MiB)', ours.peakRssMiB, theirs.peakRssMiB, 'lower', 0],
  ];
  const lines = [`${title}`, '| figure | ours | distribution 3.1.2 | ratio |', '| --- | --- | --- | --- |'];
  for (const [label, a, b, better, digits] of rows) {
    const ratio = better === 'higher' ? a / b : b / a;
    const show = (value: number) => (Number.isFinite(value) && value > 0 ? value.toFixed(digits) : '-');
    lines.push(`| ${label} | ${show(a)} | ${show(b)} | ${Number.isFinite(ratio) ? ratio.toFixed(2) : '-'} |`);
  }
  return lines.join('\n');
}

async function compare(
  title: string,
  start: () => Promise<[Server, Server]>,
  big: string,
  bigDigest: string,
  small: string,
  work: string,
): Promise<string> {
  const [ours, theirs] = await start();
  const figures = () => ({
    pushMiBs: [],
    pushCpuMsPerMiB: [],
    pullMiBs: [],
    pullCpuMsPerMiB: [],
    smallPushS: [],
    smallPullS: [],
    peakRssMiB: 0,
    idleRssMiB: 0,
  });
  const results: [Figures, Figures] = [figures(), figures()];
  const failures: [string | undefined, string | undefined] = [undefined, undefined];
  const servers = [ours, theirs] as const;
  try {
    for (let round = 0; round < ROUNDS; round += 1) {
      const order = round % 2 === 0 ? [0, 1] : [1, 0];
      for (const index of order) {
        if (failures[index] !== undefined) continue;
        try {
          await measure(servers[index]!, round, big, bigDigest, small, work, results[index]!);
        } catch (error) {
          // One side failing (Distribution's s3-aws on some S3 servers) still leaves the other's rows.
          const said = servers[index]!.output().trim().split('\n').at(-1) ?? '';
          failures[index] = `${(error as Error).message.split('\n')[0]} -- server: ${said.slice(0, 400)}`;
        }
      }
    }
  } finally {
    await ours.stop();
    await theirs.stop();
  }
  const notes = failures.flatMap((failure, i) =>
    failure === undefined ? [] : [`${servers[i]!.label} failed: ${failure}`],
  );
  return [table(title, results[0], results[1]), ...notes].join('\n');
}

async function main(): Promise<void> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-crane-'));
  let s3: TestS3Server | undefined;
  try {
    const big = path.join(work, 'big');
    const layer = await bigLayer(path.join(work, 'layer'), SIZE_MB);
    const [bigDigest] = await writeLayout(big, [layer]);
    const small = path.join(work, 'small');
    await writeLayout(
      small,
      Array.from({ length: SMALL_LAYERS }, () => randomBytes(SMALL_LAYER_BYTES)),
    );
    console.log(
      `# crane bench ${new Date().toISOString()}, ${os.cpus().length} vCPU, node ${process.version}, load ${os.loadavg()[0]!.toFixed(1)}, medians of ${ROUNDS} rounds`,
    );
    if (args.only !== 's3') {
      const fsTable = await compare(
        'filesystem',
        async () => {
          const root = await fs.mkdtemp(path.join(work, 'ours-'));
          return Promise.all([
            startOurs({ REGISTRY_STORAGE_ROOT: root }),
            startDistribution3('  filesystem:\n    rootdirectory: <dir>/data'),
          ]);
        },
        big,
        bigDigest!,
        small,
        work,
      );
      console.log(`\n${fsTable}`);
    }
    if (args.only !== 'fs') {
      s3 = await startS3Server();
      const server = s3;
      const s3Table = await compare(
        'S3 (gofakes3 v1.2.0, in memory, loopback)',
        async () => {
          const ours = await server.bucket('ours');
          const theirs = await server.bucket();
          const endpoint = new URL(server.endpoint);
          return Promise.all([
            startOurs(server.registryEnv(ours)),
            startDistribution3(
              [
                '  s3:',
                `    accesskey: ${S3_TEST_CREDENTIALS.accessKeyId}`,
                `    secretkey: ${S3_TEST_CREDENTIALS.secretAccessKey}`,
                '    region: us-east-1',
                `    regionendpoint: http://${endpoint.host}`,
                '    forcepathstyle: true',
                `    bucket: ${theirs.bucket}`,
                '    secure: false',
                '    v4auth: true',
                '    rootdirectory: /distribution',
              ].join('\n'),
            ),
          ]);
        },
        big,
        bigDigest!,
        small,
        work,
      );
      console.log(`\n${s3Table}`);
    }
  } finally {
    await s3?.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
}

await main();
