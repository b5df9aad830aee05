import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnCli, type CliProcess } from '../helpers/spawn-cli.js';
import { healthzLatencies } from '../helpers/healthz.js';
import { percentile } from '../helpers/percentile.js';

/**
 * Issue 10's leftover: update operators over a ~1 MB array ran on the event loop in one piece
 * (a `$pull` ~240 ms), so every other request waited. Against the real `serve` process, two
 * clients send the most expensive updates we found in a loop over a registry holding an array
 * of 1,000 strings of ~1 kB (the largest a 1 MB body can create), while `/healthz` is measured.
 */

const ID = '00000000-0000-4000-8000-000000000001';
const LIST = Array.from({ length: 1000 }, (_, i) => `item-${String(i).padStart(4, '0')}-${'a'.repeat(940)}`);
const REGISTRY = {
  container_registry_id: ID,
  container_registry_name: 'large',
  container_registry_metadata: { list: LIST },
  container_registry_tags: ['load'],
  container_registry_public_url: 'http://registry.example.test:5000',
  container_registry_image_prefix: '',
  container_registry_config: {},
  container_registry_storage_info: {},
};

/** Each leaves the list as it found it, or puts it back (`$set` of the whole list). */
const UPDATES: unknown[] = [
  { $pull: { 'container_registry_metadata.list': { $regex: 'z{3}$' } } },
  { $pull: { 'container_registry_metadata.list': { $in: ['x', 'y', LIST[500]!.replace('a', 'b')] } } },
  { $addToSet: { 'container_registry_metadata.list': { $each: LIST.slice(0, 24) } } },
  { $pull: { 'container_registry_metadata.list': { $regex: '^item-09' } } },
  { $set: { 'container_registry_metadata.list': LIST } },
  { $set: { 'container_registry_metadata.note': 'touched' } },
];

describe('expensive updates of a ~1 MB array against the serve process', function () {
  this.timeout(120_000);
  let dataDir: string;
  let cli: CliProcess;
  let url: string;

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'catalog-update-load-'));
    cli = spawnCli(['serve'], { PORT: '0', DATA_DIR: dataDir, HEALTH_MONITOR_ENABLED: 'false' });
    url = String((await cli.waitForLog((line) => line.msg === 'catalog listening')).url);
    const created = await fetch(`${url}/container_registry`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(REGISTRY),
    });
    expect(created.status).to.equal(201);
  });
  after(async () => {
    cli?.child.kill('SIGKILL');
    await cli?.exited;
    await rm(dataDir, { recursive: true, force: true });
  });

  /**
   * One round: two clients loop over the updates while `/healthz` is probed for 8 s. Resolves
   * with the probes' latencies and every update's outcome.
   */
  async function round(): Promise<{
    latencies: number[];
    outcomes: Array<{ update: number; status: number; ms: number }>;
  }> {
    const outcomes: Array<{ update: number; status: number; ms: number }> = [];
    let attacking = true;
    const attacker = async (offset: number) => {
      for (let i = offset; attacking; i++) {
        const started = performance.now();
        const res = await fetch(`${url}/container_registry/${ID}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(UPDATES[i % UPDATES.length]),
          signal: AbortSignal.timeout(20_000),
        });
        await res.arrayBuffer();
        outcomes.push({ update: i % UPDATES.length, status: res.status, ms: performance.now() - started });
      }
    };
    const attackers = [attacker(0), attacker(3)];
    await new Promise((resolve) => setTimeout(resolve, 300));
    const latencies = await healthzLatencies(url, 8_000);
    attacking = false;
    await Promise.all(attackers);
    return { latencies, outcomes };
  }

  it('keeps /healthz p99 under the target while they run, and every update ends with 200 or a 4xx', async () => {
    // The machine's own noise first, for the report: the same probes with no update running.
    const quiet = await healthzLatencies(url, 2_000);
    // Target 100 ms; the bound leaves room for a machine shared with other work (as hostile-load
    // does), over the machine's own noise of the same run (2 cores shared by ~8 workloads: its
    // p99 with no update running was 50-100 ms while this was written).
    const bound = 250 + percentile(quiet, 99);
    // ~120 probes make p99 the slowest probe or two: one stall of the host (a CI run once saw a
    // single 944 ms probe among 99 under 100 ms, not reproduced in 60 rounds here, with or
    // without disk load) would decide it. Work that blocks the loop blocks it in every round,
    // so a second round is measured when the first is over the bound, and both must be.
    const p99s: number[] = [];
    for (let attempt = 1; attempt <= 2; attempt++) {
      const { latencies, outcomes } = await round();
      expect(outcomes.length).to.be.greaterThan(UPDATES.length);
      for (const outcome of outcomes) {
        expect(outcome.status, JSON.stringify(outcome)).to.be.oneOf([200, 409, 413, 422, 400]);
      }
      expect(outcomes.filter((o) => o.status === 200).length).to.be.greaterThan(0);
      const p99 = percentile(latencies, 99);
      p99s.push(p99);
      console.log(
        `      /healthz during updates of a 1 MB array (round ${attempt}): ${latencies.length} probes, p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms (no updates: p99 ${percentile(quiet, 99).toFixed(1)} ms); ${outcomes.length} updates (${outcomes.filter((o) => o.status === 200).length} applied)`,
      );
      if (p99 < bound) break;
    }
    expect(Math.min(...p99s)).to.be.below(bound);
  });
});
