/**
 * `npm run bench -- register [--pushes N] [--rounds R]`: push latency of the bundled registry
 * started with `--register-with` pointing at a catalog that is down, against the same registry
 * without registration, measured side by side (rounds alternate). Each push is a whole image:
 * a new 4 KiB layer (POST + PUT), the config (HEAD, present after the first) and the manifest PUT
 * by tag, which is what queues an event. Prints p50/p99 per round and the ratio.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../test/helpers/ports.js';
import { percentile } from '../../test/helpers/percentile.js';
import { imageManifest, sha256, spawnRegistry, type SpawnedRegistry } from '../../test/helpers/registry.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const PUSHES = option('pushes', 300);
const ROUNDS = option('rounds', 3);

/** The bundled registry, registering with a catalog that is down (nothing listens at its port) or not. */
async function startRegistry(root: string, register: boolean): Promise<SpawnedRegistry> {
  const down = await freePort();
  const port = await freePort();
  return spawnRegistry(
    root,
    register
      ? ['--register-with', `http://127.0.0.1:${down}`, '--public-url', `http://127.0.0.1:${port}`]
      : [],
    { port, env: { REGISTER_HEARTBEAT_S: '1' } },
  );
}

async function uploadBlob(base: string, name: string, blob: Buffer): Promise<void> {
  const started = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  await started.arrayBuffer();
  const location = new URL(started.headers.get('location')!, base);
  location.searchParams.set('digest', sha256(blob));
  const put = await fetch(location, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: blob,
  });
  await put.arrayBuffer();
  if (put.status !== 201) throw new Error(`blob upload: ${put.status}`);
}

/** Pushes `count` images; returns each push's milliseconds. */
async function pushImages(base: string, count: number): Promise<number[]> {
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' } }),
  );
  await uploadBlob(base, 'bench/app', config);
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const layer = randomBytes(4096);
    const started = process.hrtime.bigint();
    await uploadBlob(base, 'bench/app', layer);
    const head = await fetch(`${base}/v2/bench/app/blobs/${sha256(config)}`, { method: 'HEAD' });
    await head.arrayBuffer();
    const manifest = imageManifest(config, [layer]);
    const put = await fetch(`${base}/v2/bench/app/manifests/t${i}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    });
    await put.arrayBuffer();
    if (put.status !== 201) throw new Error(`manifest put: ${put.status}`);
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return times;
}

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-register-'));
try {
  console.log(`push latency, ${PUSHES} pushes per registry per round, ${ROUNDS} rounds`);
  for (let round = 1; round <= ROUNDS; round++) {
    const results: Record<string, number[]> = {};
    // Alternate which one goes first, so machine load drifts hit both alike.
    const order = round % 2 === 1 ? [false, true] : [true, false];
    for (const register of order) {
      const registry = await startRegistry(path.join(work, `r${round}-${register}`), register);
      try {
        results[register ? 'catalog down' : 'no registration'] = await pushImages(registry.url, PUSHES);
        if (register) {
          const metrics = await (await fetch(`${registry.url}/metrics`)).text();
          const queued = /registry_catalog_events_queued (\d+)/.exec(metrics)?.[1];
          console.log(`  round ${round}: events queued while the catalog is down: ${queued}`);
        }
      } finally {
        registry.cli.child.kill('SIGKILL');
        await registry.cli.exited;
      }
    }
    const plain = results['no registration']!;
    const down = results['catalog down']!;
    console.log(
      `  round ${round}: no registration p50 ${percentile(plain, 50).toFixed(2)} ms p99 ${percentile(plain, 99).toFixed(2)} ms; ` +
        `catalog down p50 ${percentile(down, 50).toFixed(2)} ms p99 ${percentile(down, 99).toFixed(2)} ms; ` +
        `ratio p50 ${(percentile(down, 50) / percentile(plain, 50)).toFixed(2)}x p99 ${(percentile(down, 99) / percentile(plain, 99)).toFixed(2)}x`,
    );
  }
} finally {
  await fs.rm(work, { recursive: true, force: true });
}
