/**
 * `npm run bench -- cli [--registries 10000] [--repeat 3]`: the CLI's `registries list --all`
 * (human table and `--json`) over a catalog of 10,000 registries, wall time and peak memory
 * (max RSS from /usr/bin/time), against references measured in the same run: Node starting and
 * doing nothing, and a bare fetch script making the same page requests (1000 per page) and
 * parsing them without printing. The catalog is bench/catalog/server.ts (embedded store, access
 * control on) in its own process; the CLI is the built one (`dist/cli.js`, built first), as users run it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BENCH_TOKEN } from '../catalog/documents.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const REGISTRIES = option('registries', 10_000);
const REPEAT = option('repeat', 3);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SERVER = fileURLToPath(new URL('../catalog/server.ts', import.meta.url));

/** The same requests as `registries list --all`, parsed and dropped: the floor of the CLI's work. */
const FETCH_FLOOR = `
const [url, token] = process.argv.slice(1);
let skip = 0, seen = 0;
for (;;) {
  const res = await fetch(url + '/container_registries?limit=1000&skip=' + skip, { method: 'POST',
    headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' }, body: '{}' });
  const { data } = await res.json();
  seen += data.length; skip += data.length;
  if (data.length < 1000) break;
}
if (seen !== Number(process.argv[3])) { console.error('saw ' + seen); process.exit(1); }
`;

interface Figure {
  seconds: number;
  maxRssMb: number;
}

/** Runs a command under /usr/bin/time with stdout to /dev/null; wall seconds and max RSS. */
function measure(command: string[], env: Record<string, string> = {}): Figure {
  const result = spawnSync('/usr/bin/time', ['-f', '%e %M', ...command], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', openSync('/dev/null', 'w'), 'pipe'],
    encoding: 'utf8',
  });
  const last = result.stderr.trim().split('\n').at(-1) ?? '';
  if (result.status !== 0) throw new Error(`${command.join(' ')} failed: ${result.stderr}`);
  const [seconds, kb] = last.split(' ').map(Number);
  return { seconds: seconds!, maxRssMb: kb! / 1024 };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

console.log(
  `# cli bench: registries list --all over ${REGISTRIES} registries, ${REPEAT} runs each, node ${process.version}`,
);
const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
if (build.status !== 0) throw new Error('npm run build failed');

const server = spawn(process.execPath, ['--import', 'tsx', SERVER, 'embedded', String(REGISTRIES)], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const { url, seedSeconds } = await new Promise<{ url: string; seedSeconds: number }>((resolve) =>
  createInterface({ input: server.stdout! }).once('line', (line) => resolve(JSON.parse(line))),
);
console.log(`# embedded store, ${REGISTRIES} registries seeded in ${seedSeconds.toFixed(1)} s`);

const env = { AIOS_CATALOG_URL: url, AIOS_CATALOG_TOKEN: BENCH_TOKEN };
const rows: Array<[string, string[]]> = [
  ['node -e 0 (startup floor)', [process.execPath, '-e', '0']],
  // What every CLI command pays before its first request: the imports of dist/cli.js.
  ['cli --version (CLI startup)', [process.execPath, 'dist/cli.js', '--version']],
  [
    'fetch pages, no output',
    [process.execPath, '--input-type=module', '-e', FETCH_FLOOR, url, BENCH_TOKEN, String(REGISTRIES)],
  ],
  ['cli list --all (table)', [process.execPath, 'dist/cli.js', 'registries', 'list', '--all']],
  ['cli list --all --json', [process.execPath, 'dist/cli.js', 'registries', 'list', '--all', '--json']],
  ['cli list (first page)', [process.execPath, 'dist/cli.js', 'registries', 'list']],
];
try {
  const results = rows.map(([name, command]) => {
    const runs = Array.from({ length: REPEAT }, () => measure(command, env));
    return { name, runs };
  });
  const floor = median(results[2]!.runs.map((r) => r.seconds));
  console.log('row                          wall s (median, min-max)   max RSS MB (median)   x fetch floor');
  for (const { name, runs } of results) {
    const seconds = runs.map((r) => r.seconds);
    const wall = median(seconds);
    console.log(
      `${name.padEnd(28)} ${wall.toFixed(2).padStart(6)} (${Math.min(...seconds).toFixed(2)}-${Math.max(...seconds).toFixed(2)})`.padEnd(
        56,
      ) +
        `${median(runs.map((r) => r.maxRssMb))
          .toFixed(0)
          .padStart(6)}`.padEnd(22) +
        `${(wall / floor).toFixed(2)}`,
    );
  }
} finally {
  server.kill('SIGTERM');
}
