/**
 * Pull-through cache benchmark: our registry (`registry --proxy hub/=...`) against CNCF
 * Distribution 3.1.2's proxy mode (`go install`ed by test/helpers/go-tools.ts, `proxy.remoteurl`), both in
 * front of the same upstream (Debian's `docker-registry` 2.8.2), each through its own counting loopback
 * proxy so the bytes each mirror asks of the upstream are measured. curl is the client (it is
 * never the bottleneck). One run prints, for a single-layer image of --size-mb (default 256):
 *
 *   cold pull (MiB/s) and time to first byte, warm pull (MiB/s), upstream bytes for 8 concurrent
 *   cold pulls of a fresh image (in image sizes), and a pull of the cached tag while the
 *   upstream answers 10 s late and while it is down (status and time).
 *
 *   npm run bench -- proxy [--size-mb 256]
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { cpuTimes } from '../lib/process-stats.js';
import { startFaultProxy, type FaultProxy } from '../../test/helpers/fault-proxy.js';
import { installGoTool } from '../../test/helpers/go-tools.js';
import { pushImage, spawnRegistry, startDistribution } from '../../test/helpers/registry.js';

const execFileAsync = promisify(execFile);
const at = process.argv.indexOf('--size-mb');
const SIZE_MB = at > 0 ? Number(process.argv[at + 1]) : 256;
const SIZE = SIZE_MB * 1024 * 1024;
const profileAt = process.argv.indexOf('--cpu-prof');
/** `--cpu-prof DIR`: our registry writes a V8 CPU profile into DIR when it stops. */
const PROFILE_DIR = profileAt > 0 ? path.resolve(process.argv[profileAt + 1] ?? '.') : undefined;
/** `--cold-only`: cold and warm pulls only (for profiling runs). */
const COLD_ONLY = process.argv.includes('--cold-only');
const roundsAt = process.argv.indexOf('--rounds');
/** `--rounds N` (default 3): cold pulls repeated on emptied mirrors. */
const ROUNDS = roundsAt > 0 ? Number(process.argv[roundsAt + 1]) : 3;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

interface Server {
  readonly url: string;
  /** Of the server process: its CPU time per cold pull is read from /proc. */
  readonly pid: number;
  stop(): Promise<void>;
}

/** Distribution 3.1.2 (`go install`ed, see test/helpers/go-tools.ts): the reference proxy. */
const DISTRIBUTION_3 = installGoTool('registry');

/** Debian's Distribution 2.8 (the upstream), or Distribution 3 as a proxy of `remote`. */
const distribution = (remote?: string): Promise<Server> =>
  startDistribution({
    inMemoryCache: true,
    ...(remote === undefined
      ? {}
      : { binary: DISTRIBUTION_3, extraConfig: ['proxy:', `  remoteurl: ${remote}`] }),
  });

const ours = async (dir: string, remote: string): Promise<Server> => {
  const registry = await spawnRegistry(dir, ['--proxy', `hub/=${remote}`], {
    env: { LOG_LEVEL: 'error' },
    nodeArgs: PROFILE_DIR === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`],
  });
  return { url: registry.url, pid: registry.cli.child.pid!, stop: () => registry.stop() };
};

/** Pushes a config + one layer of `size` random bytes as `name:1`; returns the layer's digest. */
async function seed(base: string, name: string, size: number): Promise<string> {
  const { layerDigests } = await pushImage(base, name, '1', [randomBytes(size)]);
  return layerDigests[0]!;
}

interface Pull {
  readonly status: string;
  /** CPU time (utime, stime; all threads) the mirror spent on the pull, in ms. */
  cpu?: { userMs: number; systemMs: number; minorFaults: number };
  /** Time of the manifest GET alone, in seconds (part of `ttfb`). */
  readonly manifestSeconds: number;
  readonly seconds: number;
  readonly ttfb: number;
  readonly bytes: number;
}

async function curl(
  url: string,
  ...extra: string[]
): Promise<{ status: number; seconds: number; ttfb: number; bytes: number }> {
  const { stdout } = await execFileAsync(
    'curl',
    [
      '-s',
      ...extra,
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{time_total} %{time_starttransfer} %{size_download}',
      url,
    ],
    { timeout: 120_000 },
  ).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '0 0 0 0' }));
  const [status, total, ttfb, bytes] = stdout.trim().split(' ').map(Number);
  return { status: status ?? 0, seconds: total ?? 0, ttfb: ttfb ?? 0, bytes: bytes ?? 0 };
}

/** A pull as a client does it: manifest by tag, then the layer blob. */
async function pull(base: string, name: string, tag: string, layer: string): Promise<Pull> {
  const manifest = await curl(`${base}/v2/${name}/manifests/${tag}`, '-H', `Accept: ${OCI_MANIFEST}`);
  const blob = await curl(`${base}/v2/${name}/blobs/${layer}`);
  return {
    status: `${manifest.status}/${blob.status}`,
    seconds: manifest.seconds + blob.seconds,
    ttfb: manifest.seconds + blob.ttfb,
    manifestSeconds: manifest.seconds,
    bytes: blob.bytes,
  };
}

const mibps = (p: Pull) => (p.bytes === SIZE ? SIZE / 1024 / 1024 / p.seconds : 0);

type Rows = Record<
  string,
  { ours: number | string; distribution: number | string; higherIsBetter?: boolean }
>;
type Mirrors = Record<'ours' | 'distribution', { server: Server; prefix: string; counter: FaultProxy }>;

/** A row of the same figure of each mirror. */
const both = <T>(of: Record<string, T>, figure: (value: T) => number | string) => ({
  ours: figure(of.ours!),
  distribution: figure(of.distribution!),
});

/** The rows after cold and warm pulls: 8 concurrent cold pulls, upstream slow, upstream down. */
async function others(
  rows: Rows,
  mirrors: Mirrors,
  upstream: Server,
  order: readonly ('distribution' | 'ours')[],
  first: string,
  second: string,
): Promise<void> {
  const concurrent: Record<string, { bytes: number; ok: number; seconds: number }> = {};
  for (const label of order) {
    const mirror = mirrors[label];
    const before = mirror.counter.bytes();
    const started = performance.now();
    const pulls = await Promise.all(
      Array.from({ length: 8 }, () => pull(mirror.server.url, `${mirror.prefix}library/fresh`, '1', second)),
    );
    concurrent[label] = {
      bytes: mirror.counter.bytes() - before,
      ok: pulls.filter((p) => p.bytes === SIZE).length,
      seconds: (performance.now() - started) / 1000,
    };
  }
  rows['8 concurrent cold pulls: upstream bytes (x image)'] = both(concurrent, (c) => c.bytes / SIZE);
  rows['8 concurrent cold pulls: complete / 8'] = both(concurrent, (c) => c.ok);
  rows['8 concurrent cold pulls: wall time (s)'] = both(concurrent, (c) => c.seconds);

  const slow: Record<string, Pull> = {};
  for (const label of order) {
    const mirror = mirrors[label];
    mirror.counter.mode = { delayMs: 10_000 };
    slow[label] = await pull(mirror.server.url, `${mirror.prefix}library/big`, '1', first);
  }
  rows['upstream 10 s slow: cached tag pull status'] = both(slow, (c) => c.status);
  rows['upstream 10 s slow: cached tag pull time (s)'] = both(slow, (c) => c.seconds);
  for (const label of order) mirrors[label].counter.mode = {};

  await upstream.stop();
  const down: Record<string, Pull> = {};
  for (const label of order) {
    const mirror = mirrors[label];
    down[label] = await pull(mirror.server.url, `${mirror.prefix}library/big`, '1', first);
  }
  rows['upstream down: cached tag pull status (manifest/blob)'] = both(down, (c) => c.status);
  rows['upstream down: cached tag pull time (s)'] = both(down, (c) => c.seconds);
}

async function main() {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-proxy-'));
  const servers: Server[] = [];
  let stopMirrors = async (): Promise<unknown> => undefined;
  const proxies: FaultProxy[] = [];
  try {
    const upstream = await distribution();
    servers.push(upstream);
    const first = await seed(upstream.url, 'library/big', SIZE);
    const second = await seed(upstream.url, 'library/fresh', SIZE);
    const countOurs = await startFaultProxy(upstream.url);
    const countTheirs = await startFaultProxy(upstream.url);
    proxies.push(countOurs, countTheirs);
    const startMirrors = async (): Promise<Mirrors> => ({
      ours: {
        server: await ours(path.join(work, 'ours'), countOurs.url),
        prefix: 'hub/',
        counter: countOurs,
      },
      distribution: {
        server: await distribution(countTheirs.url),
        prefix: '',
        counter: countTheirs,
      },
    });
    let mirrors = await startMirrors();
    stopMirrors = () => Promise.all([mirrors.ours.server.stop(), mirrors.distribution.server.stop()]);
    const rows: Record<
      string,
      { ours: number | string; distribution: number | string; higherIsBetter?: boolean }
    > = {};
    const order = ['distribution', 'ours'] as const;

    // Cold pulls in ROUNDS rounds, alternating who goes first; between rounds both mirrors are
    // stopped, emptied and restarted, so every round is cold. The round with the median ratio
    // is reported, with every round's ratio beside it (the machine is shared: the spread shows).
    const rounds: Array<Record<'ours' | 'distribution', Pull>> = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      if (round > 0) {
        await stopMirrors();
        // A restarted Distribution has a fresh storage root; ours is emptied here.
        await fs.rm(path.join(work, 'ours'), { recursive: true, force: true });
        mirrors = await startMirrors();
      }
      const pulls: Partial<Record<'ours' | 'distribution', Pull>> = {};
      for (const label of round % 2 === 0 ? order : [...order].reverse()) {
        const mirror = mirrors[label];
        const before = cpuTimes(mirror.server.pid);
        const cold = await pull(mirror.server.url, `${mirror.prefix}library/big`, '1', first);
        const after = cpuTimes(mirror.server.pid);
        cold.cpu = {
          userMs: after.userMs - before.userMs,
          systemMs: after.systemMs - before.systemMs,
          minorFaults: after.minorFaults - before.minorFaults,
        };
        pulls[label] = cold;
      }
      rounds.push(pulls as Record<'ours' | 'distribution', Pull>);
    }
    const ratioOf = (round: Record<'ours' | 'distribution', Pull>) =>
      mibps(round.distribution) > 0 ? mibps(round.ours) / mibps(round.distribution) : 0;
    const byRatio = [...rounds].sort((a, b) => ratioOf(a) - ratioOf(b));
    const cold = byRatio[Math.floor(byRatio.length / 2)]!;
    const warm: Record<string, Pull> = {};
    for (const label of [...order].reverse()) {
      const mirror = mirrors[label];
      warm[label] = await pull(mirror.server.url, `${mirror.prefix}library/big`, '1', first);
    }
    rows[`cold pull ${SIZE_MB} MiB (MiB/s)`] = {
      ours: mibps(cold.ours),
      distribution: mibps(cold.distribution),
      higherIsBetter: true,
    };
    rows[`cold pull ratio, each round (${ROUNDS})`] = {
      ours: rounds.map((round) => ratioOf(round).toFixed(2)).join(' '),
      distribution: '',
    };
    const cpuPerMiB = (p: Pull) => ((p.cpu?.userMs ?? 0) + (p.cpu?.systemMs ?? 0)) / SIZE_MB;
    rows['cold pull: mirror CPU per MiB (ms), each round'] = {
      ours: rounds.map((round) => cpuPerMiB(round.ours).toFixed(2)).join(' '),
      distribution: rounds.map((round) => cpuPerMiB(round.distribution).toFixed(2)).join(' '),
    };
    // The split says whether a change moved our own code (user) or the kernel's work (system).
    const split = (p: Pull) => `${p.cpu?.userMs ?? 0}/${p.cpu?.systemMs ?? 0}`;
    rows['cold pull: mirror CPU user/system (ms), each round'] = {
      ours: rounds.map((round) => split(round.ours)).join(' '),
      distribution: rounds.map((round) => split(round.distribution)).join(' '),
    };
    // Page faults are system time that is neither a system call nor the copy: fresh memory.
    const faults = (p: Pull) => ((p.cpu?.minorFaults ?? 0) / SIZE_MB).toFixed(0);
    rows['cold pull: mirror minor page faults per MiB, each round'] = {
      ours: rounds.map((round) => faults(round.ours)).join(' '),
      distribution: rounds.map((round) => faults(round.distribution)).join(' '),
    };
    rows['cold time to first byte (ms), each round'] = {
      ours: rounds.map((round) => (round.ours.ttfb * 1000).toFixed(0)).join(' '),
      distribution: rounds.map((round) => (round.distribution.ttfb * 1000).toFixed(0)).join(' '),
    };
    rows['cold manifest GET (ms), each round'] = {
      ours: rounds.map((round) => (round.ours.manifestSeconds * 1000).toFixed(0)).join(' '),
      distribution: rounds.map((round) => (round.distribution.manifestSeconds * 1000).toFixed(0)).join(' '),
    };
    rows['cold time to first byte (ms)'] = {
      ours: cold.ours.ttfb * 1000,
      distribution: cold.distribution.ttfb * 1000,
    };
    rows[`warm pull ${SIZE_MB} MiB (MiB/s)`] = {
      ours: mibps(warm.ours!),
      distribution: mibps(warm.distribution!),
      higherIsBetter: true,
    };

    if (!COLD_ONLY) await others(rows, mirrors, upstream, order, first, second);

    console.log(
      `# proxy bench ${new Date().toISOString()}: ${SIZE_MB} MiB single-layer image, node ${process.version}, ${os.cpus().length} CPUs, load ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}, one run`,
    );
    console.log('| figure | ours | distribution | ratio |');
    for (const [figure, row] of Object.entries(rows)) {
      const fmt = (value: number | string) =>
        typeof value === 'number' ? (value >= 100 ? value.toFixed(0) : value.toFixed(2)) : value;
      const ratio =
        row.higherIsBetter &&
        typeof row.ours === 'number' &&
        typeof row.distribution === 'number' &&
        row.distribution > 0
          ? (row.ours / row.distribution).toFixed(2)
          : '';
      console.log(`| ${figure} | ${fmt(row.ours)} | ${fmt(row.distribution)} | ${ratio} |`);
    }
  } finally {
    await stopMirrors().catch(() => undefined);
    for (const server of servers.reverse()) await server.stop().catch(() => undefined);
    for (const proxy of proxies) await proxy.close();
    await fs.rm(work, { recursive: true, force: true });
  }
}

await main();
