/**
 * Both servers under the worst inputs of the hostile corpus, by hand (not in `npm test`):
 *
 *   node --import tsx test/stress/attack.ts [--seconds 20] [--documents 2000] [--attackers 2]
 *
 * Starts `serve` on an embedded store of `--documents` registries with 50 kB metadata each and
 * `registry` with an htpasswd file, then for `--seconds`: `--attackers` clients loop over the slow
 * regexes of test/fixtures/hostile/regexes.json (filters and `$pull`), and bursts of 50 parallel
 * wrong passwords hit the registry; meanwhile `/healthz` (catalog) and anonymous `/v2/`
 * (registry) are probed every 20 ms. Prints p50/p99/max of the probes and the attack outcomes;
 * exits 1 when a probe p99 is 100 ms or more, or a probe failed.
 */
import bcrypt from 'bcryptjs';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EmbeddedDatabase } from '../../src/catalog/store/embedded-collection.js';
import { openRegistryStore } from '../../src/catalog/store/registry-store.js';
import { spawnCli } from '../helpers/spawn-cli.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    documents: { type: 'string', default: '2000' },
    attackers: { type: 'string', default: '2' },
  },
});
const { slow } = JSON.parse(
  readFileSync(new URL('../fixtures/hostile/regexes.json', import.meta.url), 'utf8'),
) as { slow: string[] };

const dir = await mkdtemp(path.join(tmpdir(), 'stress-attack-'));
const value = 'a'.repeat(50_000);
const database = await EmbeddedDatabase.open(path.join(dir, 'catalog'));
database.db.pragma('synchronous = OFF');
const store = await openRegistryStore(database, 'registries');
for (let n = 0; n < Number(args.documents); n++)
  await store.create({
    container_registry_id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    container_registry_name: `registry-${n}`,
    container_registry_metadata: { blob: value, list: [value, 'x'] },
    container_registry_tags: ['attack'],
    container_registry_public_url: `http://registry-${n}.example.test:5000`,
    container_registry_image_prefix: '',
    container_registry_config: {},
    container_registry_storage_info: {},
  });
await store.close();
const htpasswd = path.join(dir, 'htpasswd');
await writeFile(htpasswd, `alice:${bcrypt.hashSync('right', 10)}\n`);

const catalog = spawnCli(['serve'], {
  PORT: '0',
  DATA_DIR: path.join(dir, 'catalog'),
  HEALTH_MONITOR_ENABLED: 'false',
  RATE_LIMIT_PER_SECOND: '0',
});
const registry = spawnCli(['registry'], {
  REGISTRY_HOST: '127.0.0.1',
  REGISTRY_PORT: '0',
  REGISTRY_STORAGE_ROOT: path.join(dir, 'registry'),
  REGISTRY_HTPASSWD: htpasswd,
});
const catalogUrl = String((await catalog.waitForLog((line) => line.msg === 'catalog listening')).url);
const registryUrl = String((await registry.waitForLog((line) => line.msg === 'registry listening')).url);

const until = performance.now() + Number(args.seconds) * 1000;
const outcomes = new Map<string, number>();
const count = (key: string) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1);

async function regexAttacker(offset: number): Promise<void> {
  for (let i = offset; performance.now() < until; i++) {
    const pattern = slow[i % slow.length]!;
    const pull = i % 4 === 3;
    const res = await fetch(
      pull
        ? `${catalogUrl}/container_registry/00000000-0000-4000-8000-${String(i % 100).padStart(12, '0')}`
        : `${catalogUrl}/container_registries?limit=10`,
      {
        method: pull ? 'PUT' : 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(
          pull
            ? { $pull: { 'container_registry_metadata.list': { $regex: pattern } } }
            : { 'container_registry_metadata.blob': { $regex: pattern } },
        ),
      },
    );
    await res.arrayBuffer();
    count(`catalog ${pull ? '$pull' : 'query'} ${res.status}`);
  }
}

async function loginBursts(): Promise<void> {
  const wrong = `Basic ${Buffer.from('alice:wrong').toString('base64')}`;
  while (performance.now() < until) {
    const statuses = await Promise.all(
      Array.from({ length: 50 }, () =>
        fetch(`${registryUrl}/v2/`, { headers: { authorization: wrong } }).then(
          async (res) => (await res.arrayBuffer(), res.status),
        ),
      ),
    );
    for (const status of statuses) count(`registry wrong login ${status}`);
  }
}

async function probe(url: string, latencies: number[], failures: string[]): Promise<void> {
  while (performance.now() < until) {
    const started = performance.now();
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      await res.arrayBuffer();
      if (res.status >= 500) failures.push(`${url}: ${res.status}`);
    } catch (error) {
      failures.push(`${url}: ${(error as Error).message}`);
    }
    latencies.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const healthz: number[] = [];
const v2: number[] = [];
const failures: string[] = [];
await Promise.all([
  ...Array.from({ length: Number(args.attackers) }, (_, i) => regexAttacker(i * 3)),
  loginBursts(),
  probe(`${catalogUrl}/healthz`, healthz, failures),
  probe(`${registryUrl}/v2/`, v2, failures),
]);

function summary(name: string, values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  console.log(
    `${name.padEnd(22)} ${String(values.length).padStart(5)} probes  p50 ${at(0.5).toFixed(1)} ms  p99 ${at(0.99).toFixed(1)} ms  max ${(sorted.at(-1) ?? NaN).toFixed(1)} ms`,
  );
  return at(0.99);
}
const p99 = Math.max(summary('catalog /healthz', healthz), summary('registry /v2/ (anon)', v2));
for (const [key, n] of [...outcomes].sort()) console.log(`  ${key}: ${n}`);
for (const failure of failures.slice(0, 10)) console.log(`  probe failure: ${failure}`);

catalog.child.kill('SIGTERM');
registry.child.kill('SIGTERM');
await Promise.all([catalog.exited, registry.exited]);
await rm(dir, { recursive: true, force: true });
process.exitCode = p99 >= 100 || failures.length > 0 ? 1 : 0;
