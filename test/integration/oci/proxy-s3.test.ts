/**
 * The pull-through cache on S3 storage (gofakes3 on loopback): cold pulls with skopeo store the
 * upstream's bytes in the bucket, warm pulls with crane come from the bucket without asking the
 * upstream, concurrent pulls share one upstream fetch and late joiners stream what has arrived
 * (S3 cannot read an upload while it grows: they read the flight's local spool), and corrupted
 * upstream bytes never become visible.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { PROXY_DEFAULTS, resolveUpstreams } from '../../../src/oci/proxy/config.js';
import { parseDigest } from '../../../src/oci/domain/names.js';
import { S3Driver } from '../../../src/oci/storage/s3-driver.js';
import { TMP_DIR, blobPath } from '../../../src/oci/storage/layout.js';
import { download } from '../../helpers/blob-download.js';
import { startFaultProxy, type FaultProxy } from '../../helpers/fault-proxy.js';
import { installGoTool } from '../../helpers/go-tools.js';
import { pushBlob, startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import {
  OciLayoutWriter,
  readLayoutBlob,
  readLayoutRef,
  type LayoutDescriptor,
} from '../../helpers/registry-oci-layout.js';
import { startS3Server, type TestS3Server } from '../../helpers/s3-server.js';
import { skopeo } from '../../helpers/skopeo.js';
import { tempDir } from '../../helpers/temp-dirs.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;
const SPOOL_DIR = path.join(os.tmpdir(), 'aios-registry-proxy');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('registry: pull-through cache on S3 storage (gofakes3), skopeo and crane', function () {
  this.timeout(240_000);
  let s3: TestS3Server;
  let driver: S3Driver;
  let upstream: TestRegistry;
  let proxy: FaultProxy;
  let mirror: TestRegistry;
  let work: string;
  let crane: string;

  const blobUrl = (digest: string) => `${mirror.url}/v2/hub/team/big/blobs/${digest}`;
  const inBucket = async (digest: string) => (await driver.stat(blobPath(parseDigest(digest)))) !== undefined;
  /** Waits until the flight of `digest` has put it into the bucket (it ends after the clients'). */
  const stored = async (digest: string) => {
    for (let i = 0; i < 300 && !(await inBucket(digest)); i += 1) await sleep(50);
    return inBucket(digest);
  };
  const spools = async () =>
    (await fs.readdir(SPOOL_DIR).catch(() => [] as string[])).filter((name) =>
      name.startsWith('proxy-spool-'),
    );
  /** Spool files of other processes (the directory is the OS temp dir's) are not this test's. */
  let foreignSpools = new Set<string>();
  const leftovers = async () => ({
    tmp: (await driver.list(TMP_DIR)).filter((name) => name.startsWith('proxy-')),
    spools: (await spools()).filter((name) => !foreignSpools.has(name)),
  });

  before(async () => {
    crane = installGoTool('crane');
    s3 = await startS3Server();
    driver = new S3Driver(await s3.bucket('mirror'));
    upstream = await startTestRegistry();
    proxy = await startFaultProxy(upstream.url);
    work = await tempDir('proxy-s3-');
    foreignSpools = new Set(await spools());
    mirror = await startTestRegistry({
      driver,
      upstreams: resolveUpstreams([{ prefix: 'hub/', url: proxy.url }], undefined, PROXY_DEFAULTS),
    });
  });
  after(async () => {
    await mirror?.close();
    await proxy?.close();
    await upstream?.close();
    driver?.client.destroy();
    await s3?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('cold pull with skopeo fills the bucket byte for byte; a warm pull with crane comes from S3 alone', async () => {
    const layout = new OciLayoutWriter(path.join(work, 'source'));
    const image = layout.image(3, 'amd64');
    await layout.write({ app: image });
    await skopeo(
      'copy',
      '--dest-tls-verify=false',
      `oci:${layout.dir}:app`,
      `docker://${upstream.host}/team/app:1`,
    );

    const back = path.join(work, 'cold');
    await skopeo(
      'copy',
      '--src-tls-verify=false',
      `docker://${mirror.host}/hub/team/app:1`,
      `oci:${back}:app`,
    );
    expect((await readLayoutRef(back, 'app'))?.digest).to.equal(image.digest);
    const manifest = JSON.parse((await readLayoutBlob(back, image.digest)).toString()) as {
      config: LayoutDescriptor;
      layers: LayoutDescriptor[];
    };
    const blobs = [manifest.config, ...manifest.layers];
    for (const blob of blobs) {
      expect(await readLayoutBlob(back, blob.digest)).to.deep.equal(layout.blobs.get(blob.digest));
      expect(await stored(blob.digest), `${blob.digest} in the bucket`).to.equal(true);
    }
    expect(await inBucket(image.digest)).to.equal(true);
    // Nothing of the cache lives in the mirror's directory: the bucket holds it all.
    expect(await fs.readdir(path.join(mirror.root, 'blobs')).catch(() => [])).to.deep.equal([]);

    // The upstream is now broken for blobs and manifests: by digest, the cache answers alone.
    const askedBefore = proxy.count('GET', '');
    proxy.mode = { status: 503 };
    const warm = path.join(work, 'warm');
    await execFileAsync(
      crane,
      ['pull', '--insecure', '--format', 'oci', `${mirror.host}/hub/team/app@${image.digest}`, warm],
      { timeout: 60_000 },
    );
    for (const blob of blobs)
      expect(await readLayoutBlob(warm, blob.digest)).to.deep.equal(layout.blobs.get(blob.digest));
    expect(proxy.count('GET', '') - askedBefore).to.equal(0);
    proxy.mode = {};
    expect(await leftovers()).to.deep.equal({ tmp: [], spools: [] });
  });

  it('8 concurrent pulls of one uncached blob: one upstream fetch; late joiners stream what arrived, not after the whole blob', async () => {
    const data = randomBytes(48 * MiB);
    const digest = await pushBlob(upstream.url, 'team/big', data);
    proxy.mode = { bytesPerSecond: 12 * MiB }; // the fetch takes about 4 s
    const started = Date.now();
    const early = Array.from({ length: 4 }, () => download(blobUrl(digest)));
    await sleep(1200);
    const joinedAt = Date.now();
    const late = Array.from({ length: 4 }, () => download(blobUrl(digest)));
    const earlyResults = await Promise.all(early);
    const lateResults = await Promise.all(late);
    proxy.mode = {};
    for (const result of [...earlyResults, ...lateResults]) {
      expect(result.error).to.equal(undefined);
      expect(result.status).to.equal(200);
      expect(result.bytes).to.equal(data.length);
      expect(result.digest).to.equal(digest);
    }
    expect(proxy.count('GET', `/blobs/${digest}`)).to.equal(1);
    const earlyEnd = Math.min(...earlyResults.map((result) => result.endAt));
    const lateFirst = Math.max(...lateResults.map((result) => result.firstByteAt));
    expect(earlyEnd - started, 'the fetch is slow enough to join').to.be.greaterThan(2500);
    expect(
      lateFirst - joinedAt,
      `late joiners' first bytes ${lateFirst - joinedAt} ms after joining, the fetch ended ${earlyEnd - joinedAt} ms after`,
    ).to.be.lessThan((earlyEnd - joinedAt) / 2);
    expect(await stored(digest)).to.equal(true);
    const again = await download(blobUrl(digest));
    expect(again.digest).to.equal(digest);
    expect(proxy.count('GET', `/blobs/${digest}`)).to.equal(1);
    expect(await leftovers()).to.deep.equal({ tmp: [], spools: [] });
  });

  it('an upstream sending corrupted bytes: every client is cut short, nothing appears in the bucket, a later pull of the good bytes completes', async () => {
    const data = randomBytes(12 * MiB);
    const digest = await pushBlob(upstream.url, 'team/big', data);
    // The upstream's copy rots on its disk (same length, other bytes): it serves what it has.
    const file = path.join(upstream.root, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
    const rotten = Buffer.from(data);
    rotten.fill(0, 5 * MiB, 5 * MiB + 4096);
    await fs.writeFile(file, rotten);
    const results = await Promise.all([download(blobUrl(digest)), download(blobUrl(digest))]);
    for (const result of results) {
      expect(result.error, 'the connection is cut').to.be.a('string');
      expect(result.bytes).to.be.lessThan(data.length);
    }
    expect(await inBucket(digest)).to.equal(false);
    // The temporary upload is deleted from S3 after the clients are cut; give it a moment.
    for (let i = 0; i < 40 && (await leftovers()).tmp.length > 0; i += 1) await sleep(50);
    expect(await leftovers()).to.deep.equal({ tmp: [], spools: [] });

    await fs.writeFile(file, data);
    const retry = await download(blobUrl(digest));
    expect(retry.error).to.equal(undefined);
    expect(retry.digest).to.equal(digest);
    expect(await stored(digest)).to.equal(true);
    expect(proxy.count('GET', `/blobs/${digest}`)).to.equal(2);
  });
});
