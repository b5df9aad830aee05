import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { download } from '../../helpers/blob-download.js';
import { startFaultProxy, type FaultProxy } from '../../helpers/fault-proxy.js';
import { pushBlob, startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { tempDir } from '../../helpers/temp-dirs.js';
import { assertConsistent } from '../../helpers/registry-push.js';
import { spawnCli, type CliProcess } from '../../helpers/spawn-cli.js';

const MiB = 1024 * 1024;

async function spawnMirror(root: string, upstream: string): Promise<{ cli: CliProcess; url: string }> {
  const cli = spawnCli(
    ['registry', '--host', '127.0.0.1', '--port', '0', '--storage-root', root, '--proxy', `hub/=${upstream}`],
    { LOG_LEVEL: 'info' },
  );
  const line = await cli.waitForLog((entry) => entry.msg === 'registry listening');
  return { cli, url: String(line.url) };
}

async function stopMirror(cli: CliProcess): Promise<void> {
  if (cli.child.exitCode === null && cli.child.signalCode === null) {
    cli.child.kill('SIGTERM');
    await cli.exited;
  }
}

async function tempFiles(root: string): Promise<string[]> {
  return (await fs.readdir(path.join(root, '_tmp')).catch(() => [] as string[])).filter((name) =>
    name.startsWith('proxy-'),
  );
}

describe('registry: pull-through cache single flight (8 clients, disconnects, upstream death, SIGKILL)', function () {
  this.timeout(180_000);
  let upstream: TestRegistry;
  let proxy: FaultProxy;
  let root: string;
  let mirror: { cli: CliProcess; url: string };
  const blobs = new Map<string, Buffer>();

  const addBlob = async (size: number): Promise<string> => {
    const data = randomBytes(size);
    const digest = await pushBlob(upstream.url, 'team/big', data);
    blobs.set(digest, data);
    return digest;
  };
  const blobUrl = (digest: string) => `${mirror.url}/v2/hub/team/big/blobs/${digest}`;
  const storedPath = (digest: string) =>
    path.join(root, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));

  before(async () => {
    upstream = await startTestRegistry();
    proxy = await startFaultProxy(upstream.url);
    root = await tempDir('proxy-flight-');
    mirror = await spawnMirror(root, proxy.url);
  });
  after(async () => {
    if (mirror) await stopMirror(mirror.cli);
    await proxy?.close();
    await upstream?.close();
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  it('8 concurrent pulls of one uncached 200 MB blob: one upstream fetch, identical bytes, first byte early', async () => {
    const digest = await addBlob(200 * MiB);
    proxy.mode = { bytesPerSecond: 100 * MiB };
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 8 }, () => download(blobUrl(digest))));
    const fetchEnded = Math.max(...results.map((result) => result.endAt));
    for (const result of results) {
      expect(result.error).to.equal(undefined);
      expect(result.status).to.equal(200);
      expect(result.digest).to.equal(digest);
    }
    expect(proxy.count('GET', `/blobs/${digest}`)).to.equal(1);
    expect(proxy.bytes()).to.be.at.most(200 * MiB + 64 * 1024);
    const firstByte = Math.min(...results.map((result) => result.firstByteAt)) - started;
    const total = fetchEnded - started;
    expect(total).to.be.greaterThan(1500); // the bandwidth cap makes the fetch take ~2 s
    expect(firstByte, `first byte after ${firstByte} ms of ${total} ms`).to.be.lessThan(total / 4);
    // Cached now: served locally, the upstream is not asked again.
    const again = await download(blobUrl(digest));
    expect(again.digest).to.equal(digest);
    expect(proxy.count('GET', `/blobs/${digest}`)).to.equal(1);
  });

  it('a client hanging up does not abort the fetch: a later client gets the bytes from the same fetch', async () => {
    const digest = await addBlob(48 * MiB);
    proxy.mode = { bytesPerSecond: 24 * MiB };
    const first = await download(blobUrl(digest), 2 * MiB);
    expect(first.error).to.equal('client hung up');
    const second = await download(blobUrl(digest));
    expect(second.digest).to.equal(digest);
    expect(proxy.count('GET', `/blobs/${digest}`)).to.equal(1);
  });

  it('an upstream dying mid-blob cuts the clients and leaves nothing visible; the next pull completes', async () => {
    const digest = await addBlob(32 * MiB);
    proxy.mode = { bytesPerSecond: 32 * MiB, cutAfterBytes: 8 * MiB };
    const results = await Promise.all([download(blobUrl(digest)), download(blobUrl(digest))]);
    for (const result of results) {
      expect(result.error).to.be.a('string');
      expect(result.bytes).to.be.lessThan(32 * MiB);
    }
    await fs.access(storedPath(digest)).then(
      () => expect.fail('a half-fetched blob became visible'),
      () => undefined,
    );
    // One log line for the failure (one fetch, two clients), naming the upstream and the reason.
    const logged = await mirror.cli.waitForLog(
      (line) => String(line.msg).startsWith('upstream failure'),
      5000,
    );
    expect(logged).to.include({ upstream: proxy.host, level: 40 });
    expect(mirror.cli.logs.filter((line) => String(line.msg).startsWith('upstream failure'))).to.have.length(
      1,
    );
    const head = await fetch(`${mirror.url}/v2/hub/team/big/blobs/${digest}`, { method: 'HEAD' });
    expect(head.headers.get('content-length')).to.equal(String(32 * MiB)); // from upstream, not a partial file
    for (let i = 0; i < 20 && (await tempFiles(root)).length > 0; i += 1)
      await new Promise((r) => setTimeout(r, 50));
    expect(await tempFiles(root)).to.deep.equal([]);
    proxy.mode = {};
    const retry = await download(blobUrl(digest));
    expect(retry.digest).to.equal(digest);
  });

  it('SIGKILL of the mirror mid-fetch, then restart: nothing corrupt or half-visible, the next pull completes', async () => {
    const digest = await addBlob(64 * MiB);
    proxy.mode = { bytesPerSecond: 16 * MiB };
    const partial = download(blobUrl(digest));
    for (let i = 0; i < 100 && proxy.bytes() === 0; i += 1) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 500));
    mirror.cli.child.kill('SIGKILL');
    await mirror.cli.exited;
    const cut = await partial;
    expect(cut.bytes).to.be.lessThan(64 * MiB);
    await assertConsistent(root);
    await fs.access(storedPath(digest)).then(
      () => expect.fail('a half-fetched blob became visible'),
      () => undefined,
    );
    proxy.mode = {};
    mirror = await spawnMirror(root, proxy.url);
    const complete = await download(blobUrl(digest));
    expect(complete.digest).to.equal(digest);
    await assertConsistent(root);
  });
});
