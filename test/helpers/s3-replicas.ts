/**
 * Several registry processes on one S3 bucket: starting them, pushing one image through several
 * of them at once (an upload started on one, continued and finished on others), checking the
 * bucket, and SIGKILL rounds. Shared by test/integration/oci/s3-replicas.test.ts and
 * test/stress/s3-replicas.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { Blobs } from '../../src/oci/domain/blobs.js';
import { Content } from '../../src/oci/domain/content.js';
import { parseManifest } from '../../src/oci/domain/manifests.js';
import { parseDigest } from '../../src/oci/domain/names.js';
import type { StorageDriver } from '../../src/oci/storage/driver.js';
import {
  blobPath,
  layersDir,
  revisionLinkPath,
  revisionsDir,
  tagPath,
  tagsDir,
} from '../../src/oci/storage/layout.js';
import { imageManifest, sha256, trickle } from './registry.js';
import { spawnCli, type CliProcess } from './spawn-cli.js';

export interface Replica {
  readonly process: CliProcess;
  readonly base: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `registry` on 127.0.0.1:<free port> with the S3 environment `env`. */
export async function startReplica(env: Record<string, string>): Promise<Replica> {
  const child = spawnCli(['registry', '--host', '127.0.0.1', '--port', '0'], { LOG_LEVEL: 'info', ...env });
  const line = await child.waitForLog((entry) => entry.msg === 'registry listening', 30_000);
  return {
    process: child,
    base: String(line.url),
    stop: async (signal = 'SIGTERM') => {
      if (child.child.exitCode !== null || child.child.signalCode !== null) return;
      child.child.kill(signal);
      await child.exited;
    },
  };
}

export async function startReplicas(env: Record<string, string>, count: number): Promise<Replica[]> {
  return Promise.all(Array.from({ length: count }, () => startReplica(env)));
}

/**
 * Pushes config + layers + manifest under `tag`, spreading the requests over `bases`: blob i
 * starts on one replica, its chunks go to the next ones and it finishes on yet another; the
 * manifest goes to the last. Returns the manifest digest.
 */
export async function pushImageAcross(
  bases: readonly string[],
  name: string,
  tag: string,
  layers: Buffer[],
  config: Buffer = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', tag })),
): Promise<string> {
  const at = (i: number) => bases[i % bases.length]!;
  for (const [i, blob] of [config, ...layers].entries()) {
    const digest = sha256(blob);
    const started = await fetch(`${at(i)}/v2/${name}/blobs/uploads/`, { method: 'POST' });
    if (started.status !== 202) throw new Error(`upload start answered ${started.status}`);
    let location = started.headers.get('location') ?? '';
    const cut = [0, Math.floor(blob.length / 3), Math.floor((2 * blob.length) / 3)];
    for (const [c, start] of cut.slice(0, 2).entries()) {
      const end = cut[c + 1]!;
      if (end === start) continue;
      const patched = await trickle(`${at(i + 1 + c)}${location}`, 'PATCH', blob.subarray(start, end), {
        'Content-Range': `${start}-${end - 1}`,
      });
      if (patched.status !== 202) throw new Error(`chunk answered ${patched.status}`);
      location = String(patched.headers.location);
    }
    const finished = await trickle(`${at(i + 3)}${location}?digest=${digest}`, 'PUT', blob.subarray(cut[2]));
    if (finished.status !== 201) throw new Error(`upload finish answered ${finished.status}`);
  }
  const manifest = imageManifest(config, layers);
  const put = await fetch(`${at(layers.length + 4)}/v2/${name}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  if (put.status !== 201) throw new Error(`manifest push answered ${put.status}: ${await put.text()}`);
  return sha256(manifest);
}

/** Pulls `name:tag` from `base` and checks every blob against its digest; returns the manifest digest. */
export async function pullAndVerify(base: string, name: string, tag: string): Promise<string> {
  const response = await fetch(`${base}/v2/${name}/manifests/${tag}`, {
    headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  expect(response.status, `${base} ${name}:${tag}`).to.equal(200);
  const body = Buffer.from(await response.arrayBuffer());
  const manifest = JSON.parse(body.toString()) as {
    config: { digest: string };
    layers: { digest: string }[];
  };
  for (const { digest } of [manifest.config, ...manifest.layers]) {
    const blob = await fetch(`${base}/v2/${name}/blobs/${digest}`);
    expect(blob.status, `${base} blob ${digest}`).to.equal(200);
    expect(sha256(Buffer.from(await blob.arrayBuffer()))).to.equal(digest);
  }
  return sha256(body);
}

/**
 * What a reader of the bucket can see is whole: every blob matches its digest; every tag names a
 * manifest revision whose bytes exist; every manifest revision's config and layers exist; every
 * layer link names an existing blob. Returns the number of blobs verified.
 */
export async function assertStorageConsistent(driver: StorageDriver): Promise<number> {
  let blobs = 0;
  for (const prefix of await driver.list('blobs/sha256')) {
    for (const hex of await driver.list(`blobs/sha256/${prefix}`)) {
      const hash = createHash('sha256');
      for await (const chunk of driver.readStream(`blobs/sha256/${prefix}/${hex}`))
        hash.update(chunk as Buffer);
      expect(hash.digest('hex'), `blob ${hex} is corrupt or half-written`).to.equal(hex);
      blobs += 1;
    }
  }
  for (const name of await new Content(driver, new Blobs(driver)).repositories()) {
    for (const tag of await driver.list(tagsDir(name))) {
      const digest = parseDigest((await driver.readFile(tagPath(name, tag)))!.toString());
      expect(await driver.stat(revisionLinkPath(name, digest)), `${name}:${tag} revision`).to.not.equal(
        undefined,
      );
    }
    for (const hex of await driver.list(`${revisionsDir(name)}/sha256`)) {
      const digest = parseDigest(`sha256:${hex}`);
      const body = await driver.readFile(blobPath(digest));
      expect(body, `${name}@${digest.value} bytes`).to.not.equal(undefined);
      const mediaType = (await driver.readFile(revisionLinkPath(name, digest)))!.toString();
      for (const blob of parseManifest(body!, mediaType).blobs) {
        expect(await driver.stat(blobPath(blob)), `${name}@${digest.value} needs ${blob.value}`).to.not.equal(
          undefined,
        );
      }
    }
    for (const hex of await driver.list(`${layersDir(name)}/sha256`)) {
      const stat = await driver.stat(blobPath(parseDigest(`sha256:${hex}`)));
      expect(stat, `${name} links missing blob ${hex}`).to.not.equal(undefined);
    }
  }
  return blobs;
}

export interface ReplicaRoundResult {
  readonly interrupted: number;
  readonly blobs: number;
}

/**
 * `rounds` SIGKILL rounds on 3 replicas started once: in round r, 8 concurrent pushes each spread
 * over all three (uploads move between replicas mid-blob), SIGKILL of replica r % 3 after
 * 150-450 ms. Then the bucket must be consistent; after a restart of the killed one, every push
 * retried through the replicas succeeds and every image reads back byte for byte from every
 * replica. `onRound` sees each round's result (a failed round throws).
 */
export async function replicaCrashRounds(
  env: Record<string, string>,
  driver: StorageDriver,
  rounds: number,
  onRound: (round: number, result: ReplicaRoundResult) => void = () => undefined,
): Promise<ReplicaRoundResult[]> {
  const replicas = await startReplicas(env, 3);
  const results: ReplicaRoundResult[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      const result = await crashRound(replicas, env, driver, round);
      onRound(round, result);
      results.push(result);
    }
    return results;
  } finally {
    await Promise.all(replicas.map((replica) => replica.stop()));
  }
}

async function crashRound(
  replicas: Replica[],
  env: Record<string, string>,
  driver: StorageDriver,
  round: number,
): Promise<ReplicaRoundResult> {
  const shared = [randomBytes(2 * 1024 * 1024), randomBytes(1024 * 1024)];
  const images = Array.from({ length: 8 }, (_, i) => ({
    name: `crash/app${i % 3}`,
    tag: `r${round}-${i}`,
    layers: i < 2 ? shared : [randomBytes(1024 * 1024 + i), randomBytes(512 * 1024)],
  }));
  const pushAll = (bases: readonly string[]) =>
    images.map((image, i) =>
      pushImageAcross([...bases.slice(i % 3), ...bases.slice(0, i % 3)], image.name, image.tag, image.layers),
    );
  const inFlight = pushAll(replicas.map((replica) => replica.base)).map((push) =>
    push.then(
      () => 'done',
      () => 'failed',
    ),
  );
  await sleep(150 + Math.random() * 300);
  const victim = round % replicas.length;
  await replicas[victim]!.stop('SIGKILL');
  const interrupted = (await Promise.all(inFlight)).filter((outcome) => outcome === 'failed').length;
  await assertStorageConsistent(driver);

  replicas[victim] = await startReplica(env);
  const survivors = replicas.map((replica) => replica.base);
  const digests = await Promise.all(pushAll(survivors));
  for (const [i, image] of images.entries()) {
    for (const base of survivors)
      expect(await pullAndVerify(base, image.name, image.tag)).to.equal(digests[i]);
  }
  return { interrupted, blobs: await assertStorageConsistent(driver) };
}
