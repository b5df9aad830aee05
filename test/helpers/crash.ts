/**
 * Crash-safety rounds: start a real server process, load it with writes, SIGKILL it at a random
 * moment, restart it on the same storage and check that every acknowledged write is there.
 * Used by test/integration/crash-safety.test.ts (a few rounds in `npm test`) and
 * test/stress/crash.ts (50 rounds per store, 20 for the registry).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { assertConsistent, startRegistry } from './registry-push.js';
import { pushImage, sha256, type BlobUpload } from './registry.js';
import { spawnCli, type CliProcess } from './spawn-cli.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the clients were told was written, per registry id. */
interface Acknowledged {
  /** The last `container_registry_metadata.counter` acknowledged, and one that may be in flight after it. */
  counter: number;
  inFlightCounter: number | undefined;
  /** Tags whose `$push` was acknowledged. */
  readonly tags: string[];
}

export interface CatalogRoundResult {
  readonly creates: number;
  readonly updates: number;
  readonly lost: string[];
  readonly restartMs: number;
}

async function startCatalog(env: Record<string, string>): Promise<{ cli: CliProcess; url: string }> {
  const cli = spawnCli(['serve'], {
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    HEALTH_MONITOR_ENABLED: 'false',
    RATE_LIMIT_PER_SECOND: '0',
    ...env,
  });
  const line = await cli.waitForLog((entry) => entry.msg === 'catalog listening', 60_000);
  return { cli, url: String(line.url) };
}

/**
 * One round against the catalog whose store `env` names (DATA_DIR, or MONGODB_URI and
 * MONGODB_DATABASE): `writers` clients create entries and update their own entries (`$set` of a
 * counter, `$push` of a tag) until the server is killed 100-600 ms after the first acknowledgement. `known` carries the
 * acknowledged state across rounds, so every round also re-checks all earlier ones.
 */
export async function catalogCrashRound(
  env: Record<string, string>,
  known: Map<string, Acknowledged>,
  writers = 8,
): Promise<CatalogRoundResult> {
  const first = await startCatalog(env);
  let killed = false;
  let creates = 0;
  let updates = 0;
  const json = { 'content-type': 'application/json' };

  const writer = async (w: number) => {
    const mine: string[] = [];
    for (let seq = 0; !killed; seq++) {
      try {
        if (mine.length === 0 || seq % 3 === 0) {
          const id = randomUUID(); // chosen by the client: an unanswered create can be looked for
          const res = await fetch(`${first.url}/container_registry`, {
            method: 'POST',
            headers: json,
            body: JSON.stringify({
              container_registry_id: id,
              container_registry_name: `crash-${w}-${seq}`,
              container_registry_public_url: 'http://127.0.0.1:9',
              container_registry_metadata: { counter: 0 },
            }),
          });
          if (res.status !== 201) throw new Error(`create answered ${res.status}`);
          known.set(id, { counter: 0, inFlightCounter: undefined, tags: [] });
          mine.push(id);
          creates++;
        } else {
          const id = mine[seq % mine.length]!;
          const state = known.get(id)!;
          const push = seq % 2 === 0;
          const next = state.counter + 1;
          const tag = `t${seq}`;
          if (!push) state.inFlightCounter = next;
          const res = await fetch(`${first.url}/container_registry/${id}`, {
            method: 'PUT',
            headers: json,
            body: JSON.stringify(
              push
                ? { $push: { container_registry_tags: tag } }
                : { $set: { 'container_registry_metadata.counter': next } },
            ),
          });
          if (res.status !== 200) throw new Error(`update answered ${res.status}`);
          if (push) state.tags.push(tag);
          else {
            state.counter = next;
            state.inFlightCounter = undefined;
          }
          updates++;
        }
      } catch {
        return; // the server is gone: whatever was in flight is unacknowledged
      }
    }
  };
  const running = Array.from({ length: writers }, (_, w) => writer(w));
  // The random moment starts after the first acknowledged write: on a loaded machine a fresh
  // FerretDB database can take longer than the whole window to create its first collection, and
  // a kill before any acknowledgement checks nothing.
  for (const deadline = Date.now() + 30_000; creates + updates === 0 && Date.now() < deadline;)
    await sleep(10);
  await sleep(100 + Math.random() * 500);
  killed = true;
  first.cli.child.kill('SIGKILL');
  await Promise.all(running);
  await first.cli.exited;

  const restartedAt = Date.now();
  const second = await startCatalog(env);
  const restartMs = Date.now() - restartedAt;
  const lost: string[] = [];
  try {
    const ready = await fetch(`${second.url}/readyz`);
    expect(ready.status, 'the store opens cleanly').to.equal(200);
    for (const [id, state] of known) {
      const res = await fetch(`${second.url}/container_registry/${id}`);
      if (res.status !== 200) {
        lost.push(`${id}: acknowledged create answers ${res.status}`);
        continue;
      }
      const { data } = (await res.json()) as {
        data: { container_registry_metadata: { counter: number }; container_registry_tags: string[] };
      };
      const counter = data.container_registry_metadata.counter;
      // The last acknowledged value, or the one whose answer the kill swallowed.
      if (counter !== state.counter && counter !== state.inFlightCounter)
        lost.push(`${id}: counter ${counter}, acknowledged ${state.counter}`);
      else state.counter = counter;
      state.inFlightCounter = undefined;
      const missing = state.tags.filter((tag) => !data.container_registry_tags.includes(tag));
      if (missing.length > 0) lost.push(`${id}: acknowledged tags missing: ${missing.join(', ')}`);
      // A $push whose answer was lost may still have landed: from now on it is known.
      for (const tag of data.container_registry_tags) if (!state.tags.includes(tag)) state.tags.push(tag);
    }
  } finally {
    second.cli.child.kill('SIGTERM');
    await second.cli.exited;
  }
  return { creates, updates, lost, restartMs };
}

export interface RegistryRoundResult {
  readonly interrupted: number;
  readonly blobs: number;
  readonly restartMs: number;
}

/**
 * One round against the bundled registry on `root`: eight concurrent image pushes (two of them
 * sharing layers, half chunked), SIGKILL after 150-450 ms or at the first completed push, then: every stored blob matches its
 * digest and every link names complete content; after a restart every push succeeds when
 * retried and reads back byte for byte.
 */
export async function registryCrashRound(root: string, round: number): Promise<RegistryRoundResult> {
  const shared = [randomBytes(2 * 1024 * 1024), randomBytes(1024 * 1024)];
  const images = Array.from({ length: 8 }, (_, i) => ({
    name: `crash/app${i % 3}`,
    tag: `r${round}-${i}`,
    layers: i < 2 ? shared : [randomBytes(1024 * 1024 + i), randomBytes(512 * 1024)],
    upload: (i % 2 === 1 ? 'trickle-chunked' : 'trickle') as BlobUpload,
  }));
  const first = await startRegistry(root);
  const inFlight = images.map((image) =>
    pushImage(first.base, image.name, image.tag, image.layers, {}, image.upload).then(
      () => 'done',
      () => 'failed',
    ),
  );
  // SIGKILL after 150-450 ms, or as soon as the first push completes if that is sooner: on a fast
  // machine all eight can finish within the window, and a kill after them would test nothing.
  await Promise.race([sleep(150 + Math.random() * 300), Promise.race(inFlight)]);
  first.process.child.kill('SIGKILL');
  const interrupted = (await Promise.all(inFlight)).filter((outcome) => outcome === 'failed').length;
  await first.process.exited;
  await assertConsistent(root);

  const restartedAt = Date.now();
  const second = await startRegistry(root);
  const restartMs = Date.now() - restartedAt;
  try {
    const digests = await Promise.all(
      images.map(
        async (image) =>
          (await pushImage(second.base, image.name, image.tag, image.layers, {}, image.upload)).digest,
      ),
    );
    for (const [i, image] of images.entries()) {
      const manifest = await fetch(`${second.base}/v2/${image.name}/manifests/${image.tag}`, {
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      expect(manifest.status).to.equal(200);
      expect(manifest.headers.get('docker-content-digest')).to.equal(digests[i]);
      for (const layer of image.layers) {
        const blob = await fetch(`${second.base}/v2/${image.name}/blobs/${sha256(layer)}`);
        expect(sha256(Buffer.from(await blob.arrayBuffer()))).to.equal(sha256(layer));
      }
    }
    return { interrupted, blobs: await assertConsistent(root), restartMs };
  } finally {
    second.process.child.kill('SIGTERM');
    await second.process.exited;
  }
}
