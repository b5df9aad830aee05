/**
 * Token-mode benchmark: three processes of our registry on loopback, in one run: no auth,
 * htpasswd (Basic), and token mode (`--auth-config`, a robot). Prints the token issue rate
 * (robot and htpasswd user), manifest GET by tag with each kind of auth (requests/s and p99), and
 * blob push/pull throughput (curl-streamed, as bench/registry does) in token mode against no auth.
 *
 *   npm run bench -- token [--size-mb 128] [--rounds 3] [--duration 4]
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { percentile } from '../../test/helpers/percentile.js';
import { imageManifest, sha256, spawnRegistry } from '../../test/helpers/registry.js';
import { CLI } from '../../test/helpers/spawn-cli.js';
import { curlPull, curlPush } from '../lib/curl.js';
import { load, type LoadResult } from '../lib/load.js';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}
const SIZE_MB = option('size-mb', 128);
const ROUNDS = option('rounds', 3);
const DURATION = option('duration', 4);
const REPO = 'bench/app';

interface Target {
  readonly label: string;
  readonly url: string;
  /** The Authorization header for a request needing `scope` (a fresh token per call in token mode). */
  auth(scope: string): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

async function start(label: string, dir: string, flags: string[], auth: Target['auth']): Promise<Target> {
  const registry = await spawnRegistry(path.join(dir, 'storage'), flags);
  return { label, url: registry.url, auth, stop: registry.stop };
}

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** The containers/image push flow, curl streaming the bytes (as bench/registry does). */
const push = (target: Target, headers: Record<string, string>, file: string, digest: string) =>
  curlPush(target.url, REPO, file, digest, headers).catch((error: Error) => {
    throw new Error(`${target.label}: ${error.message}`);
  });

const pull = (target: Target, headers: Record<string, string>, digest: string) =>
  curlPull(target.url, REPO, digest, headers);

async function seconds(action: () => Promise<void>): Promise<number> {
  spawnSync('sync');
  const started = process.hrtime.bigint();
  await action();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

const median = (values: number[]) => percentile(values, 50);
const fmt = (result: LoadResult) =>
  `${Math.round(result.requestsPerSecond)} req/s, p99 ${result.p99Ms} ms${result.non2xx + result.errors > 0 ? ` (${result.non2xx} non-2xx, ${result.errors} errors)` : ''}`;

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-token-'));
  const htpasswd = path.join(dir, 'htpasswd');
  await fs.writeFile(htpasswd, `bench:${bcrypt.hashSync('bench-pw', 10)}\n`);
  const authConfig = path.join(dir, 'auth.yaml');
  await fs.writeFile(
    authConfig,
    `service: bench\nhtpasswd: ${htpasswd}\nnamespaces:\n  - prefix: bench/\n    rules:\n      - subjects: [bench]\n        actions: [pull, push, delete]\n`,
  );
  const roots = await Promise.all(
    ['none', 'htpasswd', 'token'].map(async (name) => {
      await fs.mkdir(path.join(dir, `root-${name}`), { recursive: true });
      return path.join(dir, `root-${name}`);
    }),
  );
  const robotOut = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      CLI,
      'registry',
      'robot',
      'create',
      '--name',
      'bench',
      '--namespace',
      'bench/',
      '--actions',
      'pull,push',
      '--storage-root',
      path.join(roots[2]!, 'storage'),
    ],
    { encoding: 'utf8' },
  );
  const secret = /secret: (\S+)/.exec(robotOut.stdout)?.[1];
  if (secret === undefined) throw new Error(`robot create failed: ${robotOut.stderr}`);
  const robot = basic('robot_bench', secret);

  const none = await start('no auth', roots[0]!, [], async () => ({}));
  const basicAuth = await start('htpasswd', roots[1]!, ['--htpasswd', htpasswd], async () => ({
    Authorization: basic('bench', 'bench-pw'),
  }));
  let tokenUrl = '';
  const token = await start('token', roots[2]!, ['--auth-config', authConfig], async (scope) => {
    const response = await fetch(`${tokenUrl}/auth/token?service=bench&scope=${encodeURIComponent(scope)}`, {
      headers: { Authorization: robot },
    });
    const body = (await response.json()) as { token: string };
    return { Authorization: `Bearer ${body.token}` };
  });
  tokenUrl = token.url;
  const targets = [none, basicAuth, token];
  try {
    // A small image in each, for manifest GET by tag.
    for (const target of targets) {
      const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
      const configDigest = sha256(config);
      const headers = await target.auth(`repository:${REPO}:pull,push`);
      const blob = await fetch(`${target.url}/v2/${REPO}/blobs/uploads/?digest=${configDigest}`, {
        method: 'POST',
        headers,
        body: config,
      });
      if (blob.status !== 201) throw new Error(`${target.label}: config push ${blob.status}`);
      const manifest = imageManifest(config, []);
      const put = await fetch(`${target.url}/v2/${REPO}/manifests/latest`, {
        method: 'PUT',
        headers: { ...headers, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
        body: manifest,
      });
      if (put.status !== 201) throw new Error(`${target.label}: manifest push ${put.status}`);
    }

    console.log(
      `# token bench: node ${process.version}, ${os.cpus().length} vCPU shared by client and servers, 16 connections, ${DURATION} s per row`,
    );
    const scope = encodeURIComponent(`repository:${REPO}:pull,push`);
    const issueRobot = await load({
      url: `${token.url}/auth/token?service=bench&scope=${scope}`,
      headers: { authorization: robot },
      durationSeconds: DURATION,
    });
    const issueUser = await load({
      url: `${token.url}/auth/token?service=bench&scope=${scope}`,
      headers: { authorization: basic('bench', 'bench-pw') },
      durationSeconds: DURATION,
    });
    const issueAnonymous = await load({
      url: `${token.url}/auth/token?service=bench&scope=${scope}`,
      durationSeconds: DURATION,
    });
    console.log(`token issue, robot (SHA-256 secret)       ${fmt(issueRobot)}`);
    console.log(`token issue, htpasswd user (bcrypt, cached) ${fmt(issueUser)}`);
    console.log(`token issue, anonymous                    ${fmt(issueAnonymous)}`);

    const gets: Record<string, LoadResult> = {};
    for (const target of targets) {
      const headers = await target.auth(`repository:${REPO}:pull`);
      gets[target.label] = await load({
        url: `${target.url}/v2/${REPO}/manifests/latest`,
        headers: {
          accept: 'application/vnd.oci.image.manifest.v1+json',
          ...Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])),
        },
        durationSeconds: DURATION,
      });
    }
    for (const [label, result] of Object.entries(gets))
      console.log(
        `manifest GET by tag, ${label.padEnd(9)}         ${fmt(result)}  (${(result.requestsPerSecond / gets['no auth']!.requestsPerSecond).toFixed(2)} of no auth)`,
      );

    const file = path.join(dir, 'blob');
    const data = randomBytes(SIZE_MB * 1024 * 1024);
    await fs.writeFile(file, data);
    const digest = sha256(data);
    const pushes: Record<string, number[]> = { 'no auth': [], token: [] };
    const pulls: Record<string, number[]> = { 'no auth': [], token: [] };
    for (let round = 0; round < ROUNDS; round += 1) {
      const order = round % 2 === 0 ? [none, token] : [token, none];
      for (const target of order) {
        // A new blob each round: delete the previous one's link so the push writes it again.
        await fs.rm(path.join(target === none ? roots[0]! : roots[2]!, 'storage', 'blobs'), {
          recursive: true,
          force: true,
        });
        await fs.rm(
          path.join(
            target === none ? roots[0]! : roots[2]!,
            'storage',
            'repositories',
            'bench',
            'app',
            '_layers',
          ),
          { recursive: true, force: true },
        );
        // One token per push or pull session, as clients do; its cost is the issue rate above.
        const headers = await target.auth(`repository:${REPO}:pull,push`);
        pushes[target.label]!.push(SIZE_MB / (await seconds(() => push(target, headers, file, digest))));
        // A pull takes a tenth of a second: time four in a row to rise above the noise.
        pulls[target.label]!.push(
          (4 * SIZE_MB) /
            (await seconds(async () => {
              for (let i = 0; i < 4; i += 1) await pull(target, headers, digest);
            })),
        );
      }
    }
    const ratio = (figures: Record<string, number[]>) =>
      (median(figures.token!) / median(figures['no auth']!)).toFixed(2);
    console.log(
      `push ${SIZE_MB} MB blob (MB/s, median of ${ROUNDS}): no auth ${median(pushes['no auth']!).toFixed(0)}, token ${median(pushes.token!).toFixed(0)}, ratio ${ratio(pushes)} (target >= 0.95)`,
    );
    console.log(
      `pull ${SIZE_MB} MB blob (MB/s, median of ${ROUNDS}): no auth ${median(pulls['no auth']!).toFixed(0)}, token ${median(pulls.token!).toFixed(0)}, ratio ${ratio(pulls)} (target >= 0.95)`,
    );
  } finally {
    await Promise.all(targets.map((target) => target.stop()));
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
