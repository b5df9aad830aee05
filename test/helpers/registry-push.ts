/**
 * Pushing to the bundled registry as a client does, slowly enough to be interrupted, and checking
 * its storage afterwards: shared by the SIGKILL tests (test/integration) and runs (test/stress).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { expect } from 'chai';
import { spawnCli, type CliProcess } from './spawn-cli.js';
import { imageManifest, sha256 } from './registry.js';

/** Sends `data` in 64 KiB pieces with a pause between them, so the request is in flight for a while. */
export function trickle(
  url: string,
  method: string,
  data: Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, {
      method,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length, ...headers },
    });
    request.on('response', (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers }));
    });
    request.on('error', reject);
    let offset = 0;
    const next = () => {
      if (offset >= data.length) return request.end();
      request.write(data.subarray(offset, offset + 65536));
      offset += 65536;
      setTimeout(next, 5);
    };
    next();
  });
}

/** One image push the way clients do it: blobs (monolithic, or POST + chunked PATCH + PUT), then the manifest. */
export async function pushImage(
  base: string,
  name: string,
  tag: string,
  layers: Buffer[],
  chunked: boolean,
): Promise<string> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', tag }));
  for (const blob of [config, ...layers]) {
    const digest = sha256(blob);
    if (!chunked) {
      const done = await trickle(`${base}/v2/${name}/blobs/uploads/?digest=${digest}`, 'POST', blob);
      if (done.status !== 201) throw new Error(`monolithic push answered ${done.status}`);
      continue;
    }
    const started = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' });
    let location = started.headers.get('location') ?? '';
    const half = Math.floor(blob.length / 2);
    const first = await trickle(`${base}${location}`, 'PATCH', blob.subarray(0, half), {
      'Content-Range': `0-${half - 1}`,
    });
    location = String(first.headers.location);
    const second = await trickle(`${base}${location}?digest=${digest}`, 'PUT', blob.subarray(half));
    if (second.status !== 201) throw new Error(`chunked push answered ${second.status}`);
  }
  const manifest = imageManifest(config, layers);
  const put = await fetch(`${base}/v2/${name}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  if (put.status !== 201) throw new Error(`manifest push answered ${put.status}`);
  return sha256(manifest);
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => path.join(entry.parentPath, entry.name));
}

/** Every visible blob matches its name; every manifest link, tag and referrer names complete content. */
export async function assertConsistent(root: string): Promise<number> {
  const blobs = await filesUnder(path.join(root, 'blobs'));
  for (const file of blobs) {
    const hex = createHash('sha256')
      .update(await fs.readFile(file))
      .digest('hex');
    expect(path.basename(file), `blob ${file} is corrupt or half-written`).to.equal(hex);
  }
  for (const file of await filesUnder(path.join(root, 'repositories'))) {
    const relative = path.relative(path.join(root, 'repositories'), file);
    const tagMatch = /\/_manifests\/tags\/[^/]+$/.exec(relative);
    const revisionMatch = /\/_manifests\/revisions\/sha256\/([a-f0-9]{64})$/.exec(relative);
    const layerMatch = /\/_layers\/sha256\/([a-f0-9]{64})$/.exec(relative);
    if (tagMatch !== null) {
      const digest = (await fs.readFile(file, 'utf8')).replace('sha256:', '');
      const repository = relative.slice(0, tagMatch.index);
      await fs.access(path.join(root, 'repositories', repository, '_manifests/revisions/sha256', digest));
    } else if (revisionMatch !== null || layerMatch !== null) {
      const hex = (revisionMatch ?? layerMatch)![1]!;
      await fs.access(path.join(root, 'blobs', 'sha256', hex.slice(0, 2), hex));
    } else {
      expect.fail(`unexpected file in repositories: ${relative}`);
    }
  }
  return blobs.length;
}

export async function startRegistry(root: string): Promise<{ process: CliProcess; base: string }> {
  const child = spawnCli(['registry', '--host', '127.0.0.1', '--port', '0', '--storage-root', root], {
    LOG_LEVEL: 'info',
  });
  const line = await child.waitForLog((entry) => entry.msg === 'registry listening');
  return { process: child, base: String(line.url) };
}
