import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ContainerRegistry } from '../../src/catalog/model.js';
import { EmbeddedDatabase } from '../../src/catalog/store/embedded-collection.js';
import { openRegistryStore } from '../../src/catalog/store/registry-store.js';
import { spawnCli, type CliProcess } from '../helpers/spawn-cli.js';
import { healthzLatencies } from '../helpers/healthz.js';
import { percentile } from '../helpers/percentile.js';

/**
 * The worst regexes of the hostile corpus against the real `serve` process on a realistic
 * catalog (2,000 registries with a 50 kB metadata value each): every query ends (200, or 503 at
 * QUERY_MAX_TIME_MS), `$pull` with them is quick, and `/healthz` stays responsive meanwhile.
 * On a backtracking engine the first query never returns and the process has to be killed.
 */

const { slow: SLOW } = JSON.parse(
  readFileSync(new URL('../fixtures/hostile/regexes.json', import.meta.url), 'utf8'),
) as { slow: string[] };

const DOCUMENTS = 2_000;
const VALUE = 'a'.repeat(50_000);
const MAX_TIME_MS = 2_000;

function registry(n: number): ContainerRegistry {
  return {
    container_registry_id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    container_registry_name: `registry-${n}`,
    container_registry_metadata: { blob: VALUE, list: [VALUE, 'x'] },
    container_registry_tags: ['load'],
    container_registry_public_url: `http://registry-${n}.example.test:5000`,
    container_registry_image_prefix: '',
    container_registry_config: {},
    container_registry_storage_info: {},
  };
}

describe('hostile queries against the serve process', function () {
  this.timeout(120_000);
  let dataDir: string;
  let cli: CliProcess;
  let url: string;

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'catalog-hostile-'));
    const database = await EmbeddedDatabase.open(dataDir);
    database.db.pragma('synchronous = OFF'); // seeding only: the server reopens it with FULL
    const store = await openRegistryStore(database, 'registries');
    for (let n = 0; n < DOCUMENTS; n++) await store.create(registry(n));
    await store.close();
    cli = spawnCli(['serve'], {
      PORT: '0',
      DATA_DIR: dataDir,
      HEALTH_MONITOR_ENABLED: 'false',
      QUERY_MAX_TIME_MS: String(MAX_TIME_MS),
    });
    url = String((await cli.waitForLog((line) => line.msg === 'catalog listening')).url);
  });
  after(async () => {
    cli?.child.kill('SIGKILL');
    await cli?.exited;
    await rm(dataDir, { recursive: true, force: true });
  });

  it('answers $pull with every slow regex over a 50 kB element quickly', async () => {
    const id = registry(7).container_registry_id;
    for (const pattern of SLOW) {
      const started = performance.now();
      const res = await fetch(`${url}/container_registry/${id}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ $pull: { 'container_registry_metadata.list': { $regex: pattern } } }),
        signal: AbortSignal.timeout(10_000),
      });
      expect(res.status, pattern).to.equal(200);
      expect(performance.now() - started, pattern).to.be.below(2_000);
    }
  });

  it('ends every slow-regex query (200 or 503 at QUERY_MAX_TIME_MS) while /healthz stays fast', async () => {
    const outcomes: Array<{ pattern: string; status: number; ms: number; error?: string }> = [];
    let attacking = true;
    const attacker = async (offset: number) => {
      for (let i = offset; attacking; i++) {
        const pattern = SLOW[i % SLOW.length]!;
        const started = performance.now();
        const res = await fetch(`${url}/container_registries?limit=10`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ 'container_registry_metadata.blob': { $regex: pattern } }),
          signal: AbortSignal.timeout(MAX_TIME_MS + 10_000),
        });
        const body = (await res.json()) as { error?: string };
        outcomes.push({ pattern, status: res.status, ms: performance.now() - started, error: body.error });
      }
    };
    const attackers = [attacker(0), attacker(5)];
    await new Promise((resolve) => setTimeout(resolve, 300));
    const latencies = await healthzLatencies(url, 8_000);
    attacking = false;
    await Promise.all(attackers);

    expect(outcomes.length).to.be.greaterThan(2);
    for (const outcome of outcomes) {
      expect([200, 503], JSON.stringify(outcome)).to.include(outcome.status);
      if (outcome.status === 503) expect(outcome.error).to.match(/QUERY_MAX_TIME_MS/);
      // The whole find + count ends within the budget plus reading and queueing time.
      expect(outcome.ms, JSON.stringify(outcome)).to.be.below(MAX_TIME_MS * 2 + 2_000);
    }
    const p99 = percentile(latencies, 99);
    console.log(
      `      /healthz under attack: ${latencies.length} probes, p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms; ${outcomes.length} attack queries`,
    );
    // Target 100 ms; the bound leaves room for a machine shared with other work.
    expect(p99).to.be.below(250);
  });
});
