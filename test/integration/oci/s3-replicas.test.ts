/**
 * Three `registry` processes on one S3 bucket (gofakes3 on loopback), with no sticky sessions
 * and no shared secret: they serve the same content, continue each other's uploads, agree on a
 * tag pushed from several of them at once, survive `gc` beside them, and a SIGKILL of one during
 * concurrent pushes leaves nothing corrupt or half-visible (10 rounds, as issue 17 asks; 50: test/stress/s3-replicas.ts).
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { S3Driver, type S3Settings } from '../../../src/oci/storage/s3-driver.js';
import { pushImage, sha256, trickle } from '../../helpers/registry.js';
import {
  assertStorageConsistent,
  pullAndVerify,
  pushImageAcross,
  replicaCrashRounds,
  startReplicas,
  type Replica,
} from '../../helpers/s3-replicas.js';
import { startS3Server, type TestS3Server } from '../../helpers/s3-server.js';
import { spawnCli } from '../../helpers/spawn-cli.js';

describe('registry replicas on one S3 bucket', function () {
  this.timeout(180_000);
  let s3: TestS3Server;
  let settings: S3Settings;
  let env: Record<string, string>;
  let driver: S3Driver;
  let replicas: Replica[] = [];

  before(async () => {
    s3 = await startS3Server();
  });
  beforeEach(async () => {
    settings = await s3.bucket('registry');
    env = s3.registryEnv(settings);
    driver = new S3Driver(settings);
  });
  afterEach(async () => {
    await Promise.all(replicas.map((replica) => replica.stop()));
    replicas = [];
    driver.client.destroy();
  });
  after(async () => s3?.stop());

  it('refuse to start on a bucket that does not exist, instead of serving an empty registry', async () => {
    const cli = spawnCli(['registry', '--host', '127.0.0.1', '--port', '0'], {
      ...env,
      REGISTRY_STORAGE_URL: 's3://no-such-bucket/registry',
    });
    const exit = await cli.exited;
    expect(exit.code).to.equal(1);
    expect(cli.stderr()).to.include('S3 bucket no-such-bucket is not usable: NoSuchBucket');
  });

  it('serve the same content: pushed through one, pulled from the others, listed alike', async () => {
    replicas = await startReplicas(env, 3);
    const [a, b, c] = replicas.map((replica) => replica.base) as [string, string, string];
    const pushed = await pushImage(a, 'team/app', '1.0', [randomBytes(300_000), randomBytes(1000)]);
    for (const base of [b, c]) expect(await pullAndVerify(base, 'team/app', '1.0')).to.equal(pushed.digest);
    const listings = await Promise.all(
      [a, b, c].map(async (base) => [
        await (await fetch(`${base}/v2/_catalog`)).json(),
        await (await fetch(`${base}/v2/team/app/tags/list`)).json(),
      ]),
    );
    expect(listings[1]).to.deep.equal(listings[0]);
    expect(listings[2]).to.deep.equal(listings[0]);
    expect(listings[0]).to.deep.equal([{ repositories: ['team/app'] }, { name: 'team/app', tags: ['1.0'] }]);
  });

  it('continue an upload started on one replica: chunks PATCHed to the others, finished on a third', async () => {
    replicas = await startReplicas(env, 3);
    const [a, b, c] = replicas.map((replica) => replica.base) as [string, string, string];
    const blob = randomBytes(3 * 1024 * 1024 + 7);
    const started = await fetch(`${a}/v2/moved/blobs/uploads/`, { method: 'POST' });
    expect(started.status).to.equal(202);
    let location = started.headers.get('location')!;
    const half = 1024 * 1024 * 2;
    const first = await fetch(`${b}${location}`, {
      method: 'PATCH',
      headers: { 'Content-Range': `0-${half - 1}`, 'Content-Type': 'application/octet-stream' },
      body: blob.subarray(0, half),
    });
    expect(first.status).to.equal(202);
    expect(first.headers.get('range')).to.equal(`0-${half - 1}`);
    location = first.headers.get('location')!;
    // Every replica reports the progress another one received.
    const status = await fetch(`${a}${location}`);
    expect([status.status, status.headers.get('range')]).to.deep.equal([204, `0-${half - 1}`]);
    const outOfOrder = await fetch(`${a}${location}`, {
      method: 'PATCH',
      headers: { 'Content-Range': '0-9', 'Content-Type': 'application/octet-stream' },
      body: blob.subarray(0, 10),
    });
    expect(outOfOrder.status).to.equal(416);
    const second = await fetch(`${c}${location}`, {
      method: 'PATCH',
      headers: { 'Content-Range': `${half}-${blob.length - 2}`, 'Content-Type': 'application/octet-stream' },
      body: blob.subarray(half, blob.length - 1),
    });
    expect(second.status).to.equal(202);
    const done = await fetch(`${a}${second.headers.get('location')}?digest=${sha256(blob)}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: blob.subarray(blob.length - 1),
    });
    expect(done.status, await done.text()).to.equal(201);
    for (const base of [a, b, c]) {
      const read = await fetch(`${base}/v2/moved/blobs/${sha256(blob)}`);
      expect(sha256(Buffer.from(await read.arrayBuffer()))).to.equal(sha256(blob));
    }
    // The finished session is gone everywhere.
    expect((await fetch(`${b}${location}`)).status).to.equal(404);
    await assertStorageConsistent(driver);
  });

  it('serialize concurrent chunks of one upload sent to two replicas: one is taken, the other answered 416', async () => {
    replicas = await startReplicas(env, 2);
    const [a, b] = replicas.map((replica) => replica.base) as [string, string];
    // Two chunks of the same length for the same range, one to each replica, in flight together:
    // only one may land, or a replica's running hash would vouch for bytes the other wrote.
    const chunks = [randomBytes(1024 * 1024), randomBytes(1024 * 1024)];
    for (let round = 0; round < 3; round++) {
      const started = await fetch(`${a}/v2/serial/blobs/uploads/`, { method: 'POST' });
      const location = started.headers.get('location')!;
      const answers = await Promise.all(
        [a, b].map((base, i) =>
          trickle(`${base}${location}`, 'PATCH', chunks[i]!, {
            'Content-Range': `0-${chunks[i]!.length - 1}`,
          }),
        ),
      );
      const statuses = answers.map((answer) => answer.status);
      expect([...statuses].sort(), `round ${round}`).to.deep.equal([202, 416]);
      const winner = statuses.indexOf(202);
      const loser = 1 - winner;
      expect(answers[loser]!.headers.range, 'the 416 tells where the upload stands').to.match(/^0-\d+$/);
      // Each replica is asked to commit its own chunk's digest: only the winner's bytes are stored.
      const refused = await fetch(`${[a, b][loser]}${location}?digest=${sha256(chunks[loser]!)}`, {
        method: 'PUT',
      });
      expect(refused.status, 'the losing chunk is not in the upload').to.equal(400);
      const again = await fetch(`${a}/v2/serial/blobs/uploads/`, { method: 'POST' });
      const retry = again.headers.get('location')!;
      const patched = await trickle(`${[a, b][loser]}${retry}`, 'PATCH', chunks[winner]!, {
        'Content-Range': `0-${chunks[winner]!.length - 1}`,
      });
      expect(patched.status).to.equal(202);
      const done = await fetch(`${[a, b][winner]}${retry}?digest=${sha256(chunks[winner]!)}`, {
        method: 'PUT',
      });
      expect(done.status, await done.text()).to.equal(201);
    }
    await assertStorageConsistent(driver);
  });

  it('agree on one tag pushed concurrently from several replicas', async () => {
    replicas = await startReplicas(env, 3);
    const bases = replicas.map((replica) => replica.base);
    const digests = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        pushImageAcross([...bases.slice(i % 3), ...bases.slice(0, i % 3)], 'race/app', 'latest', [
          randomBytes(200_000 + i),
        ]),
      ),
    );
    const seen = await Promise.all(bases.map((base) => pullAndVerify(base, 'race/app', 'latest')));
    expect(new Set(seen).size, 'every replica serves the same manifest').to.equal(1);
    expect(digests).to.include(seen[0]);
    // The losers stay reachable by digest; nothing is half-written.
    for (const digest of digests) {
      const response = await fetch(`${bases[0]}/v2/race/app/manifests/${digest}`, {
        method: 'HEAD',
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      expect(response.status).to.equal(200);
    }
    await assertStorageConsistent(driver);
  });

  it('keep serving while gc runs beside them; gc removes only what nothing references', async () => {
    replicas = await startReplicas(env, 3);
    const bases = replicas.map((replica) => replica.base);
    const doomed = await pushImage(bases[0]!, 'gc/app', 'old', [randomBytes(100_000)]);
    await fetch(`${bases[1]}/v2/gc/app/manifests/${doomed.digest}`, { method: 'DELETE' });
    const kept = await pushImage(bases[2]!, 'gc/app', 'kept', [randomBytes(100_000)]);
    await new Promise((resolve) => setTimeout(resolve, 1500)); // older than the 1 s grace period

    let stop = false;
    let pushes = 0;
    const pushing = (async () => {
      while (!stop) {
        const i = pushes++;
        await pushImageAcross([...bases.slice(i % 3), ...bases.slice(0, i % 3)], 'gc/app', `live-${i}`, [
          randomBytes(50_000),
        ]);
      }
    })();
    const gc = spawnCli(['gc', '--grace-period', '1'], env);
    const exit = await gc.exited;
    stop = true;
    await pushing;
    expect(exit.code, gc.stderr()).to.equal(0);
    expect(pushes).to.be.greaterThan(0);

    const gone = await fetch(`${bases[0]}/v2/gc/app/blobs/${doomed.layerDigests[0]}`);
    expect(gone.status, 'the untagged image was collected').to.equal(404);
    for (const base of bases) expect(await pullAndVerify(base, 'gc/app', 'kept')).to.equal(kept.digest);
    for (let i = 0; i < pushes; i++) await pullAndVerify(bases[i % 3]!, 'gc/app', `live-${i}`);
    await assertStorageConsistent(driver);
  });

  it('SIGKILL of a replica during 8 concurrent pushes, 10 rounds (each replica in turn): nothing corrupt or half-visible', async function () {
    // Every round re-reads the whole bucket twice (it grows each round, so later rounds take
    // longest): 2-5 minutes here, depending on the machine's day.
    this.timeout(600_000);
    const started = Date.now();
    const results = await replicaCrashRounds(env, driver, 10, (round) =>
      process.stderr.write(
        `    crash round ${round + 1} done at ${Math.round((Date.now() - started) / 1000)} s\n`,
      ),
    );
    const interrupted = results.reduce((sum, result) => sum + result.interrupted, 0);
    expect(interrupted, 'the kills hit pushes in flight').to.be.greaterThan(0);
  });
});
