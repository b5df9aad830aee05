import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { expect } from 'chai';
import { sha256, startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { tempDir } from '../../helpers/temp-dirs.js';

const MiB = 1024 * 1024;

/** Files under the storage root except the empty skeleton: what a refused push must not leave. */
async function stored(root: string): Promise<string[]> {
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)));
}

/** A request whose body is written piece by piece; `finish()` ends it, `abort()` drops the connection. */
function streamingRequest(
  url: string,
  method: string,
  headers: Record<string, string> = {},
): {
  write(data: Buffer): void;
  finish(): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>;
  response: Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>;
  abort(): void;
} {
  const req = http.request(url, {
    method,
    headers: { 'Content-Type': 'application/octet-stream', ...headers },
  });
  const response = new Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>(
    (resolve, reject) => {
      req.on('response', (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      });
      req.on('error', reject);
    },
  );
  response.catch(() => undefined);
  return {
    write: (data) => void req.write(data),
    finish: () => (req.end(), response),
    response,
    abort: () => req.destroy(),
  };
}

const errorCode = (body: string) => (JSON.parse(body) as { errors: Array<{ code: string }> }).errors[0]!.code;

describe('registry limits: upload size', function () {
  let registry: TestRegistry;
  beforeEach(async () => {
    registry = await startTestRegistry({ maxUploadBytes: MiB });
  });
  afterEach(() => registry.close());

  it('refuses a monolithic push whose Content-Length passes the limit: 413 SIZE_INVALID, nothing kept', async () => {
    const blob = randomBytes(MiB + 1);
    const res = await fetch(`${registry.url}/v2/big/app/blobs/uploads/?digest=${sha256(blob)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: blob,
    });
    expect(res.status).to.equal(413);
    expect(errorCode(await res.text())).to.equal('SIZE_INVALID');
    expect(await stored(registry.root)).to.deep.equal([]);
    // A blob at the limit still goes in.
    const fits = randomBytes(MiB);
    const ok = await fetch(`${registry.url}/v2/big/app/blobs/uploads/?digest=${sha256(fits)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: fits,
    });
    expect(ok.status).to.equal(201);
  });

  it('stops reading a chunked upload without a length as soon as it passes the limit, and discards it', async () => {
    const started = await fetch(`${registry.url}/v2/big/app/blobs/uploads/`, { method: 'POST' });
    const location = started.headers.get('location')!;
    const patch = streamingRequest(`${registry.url}${location}`, 'PATCH'); // no Content-Length: chunked
    for (let i = 0; i < 20; i++) patch.write(randomBytes(128 * 1024)); // 2.5 MiB offered
    const answer = await patch
      .finish()
      .catch((error: Error) => ({ status: 0, body: error.message, headers: {} }));
    // Without a length there is no answer to wait for: the server stops reading and drops the connection.
    expect(answer.status).to.equal(0);
    let status = 0;
    for (let i = 0; i < 50 && status !== 404; i++) {
      status = (await fetch(`${registry.url}${location}`)).status;
      if (status !== 404) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(status, 'the upload is discarded').to.equal(404);
    expect(await stored(registry.root)).to.deep.equal([]);
    // The server keeps working.
    const small = randomBytes(1000);
    const ok = await fetch(`${registry.url}/v2/big/app/blobs/uploads/?digest=${sha256(small)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: small,
    });
    expect(ok.status).to.equal(201);
  });
});

describe('registry limits: concurrent uploads per repository', function () {
  let registry: TestRegistry;
  beforeEach(async () => {
    registry = await startTestRegistry({ maxConcurrentUploadsPerRepo: 2 });
  });
  afterEach(() => registry.close());

  const open = async (repository: string) => {
    const started = await fetch(`${registry.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    expect(started.status).to.equal(202);
    return `${registry.url}${started.headers.get('location')!}`;
  };
  const waitUntil = async (condition: () => Promise<boolean>) => {
    for (let i = 0; i < 100 && !(await condition()); i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
  };

  it('answers 429 TOOMANYREQUESTS with Retry-After past the limit; other repositories are not affected; a dropped client frees its slot', async () => {
    const first = streamingRequest(await open('busy/app'), 'PATCH');
    const second = streamingRequest(await open('busy/app'), 'PATCH');
    first.write(randomBytes(1024));
    second.write(randomBytes(1024));
    await new Promise((resolve) => setTimeout(resolve, 100)); // both are streaming now

    const third = await fetch(await open('busy/app'), {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: randomBytes(1024),
    });
    expect(third.status).to.equal(429);
    expect(third.headers.get('retry-after')).to.equal('5');
    expect(errorCode(await third.text())).to.equal('TOOMANYREQUESTS');

    const elsewhere = await fetch(await open('quiet/app'), {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: randomBytes(1024),
    });
    expect(elsewhere.status).to.equal(202);

    // One client finishes its chunk, the other disconnects mid-stream: both slots come back.
    expect((await first.finish()).status).to.equal(202);
    second.abort();
    const retryUrl = await open('busy/app');
    let retried = 0;
    await waitUntil(async () => {
      const res = await fetch(retryUrl, {
        method: 'PATCH',
        headers: {
          'Content-Type': 'application/octet-stream',
          'Content-Range': '0-1023',
          'Content-Length': '1024',
        },
        body: randomBytes(1024),
      });
      retried = res.status;
      return res.status === 202;
    });
    expect(retried).to.equal(202);
    const both = await Promise.all(
      [1, 2].map(
        async () =>
          (
            await fetch(await open('busy/app'), {
              method: 'PATCH',
              headers: { 'Content-Type': 'application/octet-stream' },
              body: randomBytes(1024),
            })
          ).status,
      ),
    );
    expect(both).to.deep.equal([202, 202]);
  });
});

describe('registry limits: read-only htpasswd users', function () {
  let registry: TestRegistry;
  let dir: string;
  const basic = (user: string, password: string) => ({
    Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
  });
  before(async () => {
    dir = await tempDir('htpasswd-ro-');
    const file = path.join(dir, 'htpasswd');
    const hash = (password: string) => bcrypt.hashSync(password, 4).replace('$2b$', '$2y$');
    await fs.writeFile(file, `alice:${hash('pusher')}\nbob:${hash('puller')}\n`);
    registry = await startTestRegistry({ htpasswd: file, readOnlyUsers: ['bob'] });
  });
  after(async () => {
    await registry.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('lets a read-only user pull but not push or delete (403 DENIED); a bad password stays 401', async () => {
    const blob = randomBytes(2048);
    const pushed = await fetch(`${registry.url}/v2/team/app/blobs/uploads/?digest=${sha256(blob)}`, {
      method: 'POST',
      headers: { ...basic('alice', 'pusher'), 'Content-Type': 'application/octet-stream' },
      body: blob,
    });
    expect(pushed.status).to.equal(201);

    const bob = basic('bob', 'puller');
    expect((await fetch(`${registry.url}/v2/`, { headers: bob })).status).to.equal(200);
    const pulled = await fetch(`${registry.url}/v2/team/app/blobs/${sha256(blob)}`, { headers: bob });
    expect(pulled.status).to.equal(200);
    expect(sha256(Buffer.from(await pulled.arrayBuffer()))).to.equal(sha256(blob));

    for (const [method, url] of [
      ['POST', '/v2/team/app/blobs/uploads/'],
      ['DELETE', `/v2/team/app/blobs/${sha256(blob)}`],
      ['PUT', '/v2/team/app/manifests/latest'],
    ] as const) {
      const res = await fetch(`${registry.url}${url}`, { method, headers: bob });
      expect(res.status, `${method} ${url}`).to.equal(403);
      expect(errorCode(await res.text())).to.equal('DENIED');
    }
    expect(
      (await fetch(`${registry.url}/v2/team/app/blobs/${sha256(blob)}`, { headers: bob })).status,
    ).to.equal(200);

    const wrong = await fetch(`${registry.url}/v2/`, { headers: basic('bob', 'nope') });
    expect(wrong.status).to.equal(401);
    expect(wrong.headers.get('www-authenticate')).to.match(/^Basic/);
  });
});
