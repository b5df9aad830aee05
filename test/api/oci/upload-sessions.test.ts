import { expect } from 'chai';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import { loadOciConfig } from '../../../src/oci/config.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { requestToken, tokenFixture, USERS } from '../../helpers/token-auth.js';

/** Open upload sessions are capped per repository and per client (429 + Retry-After), and idle ones expire. */

function startUpload(
  url: string,
  name: string,
  localAddress = '127.0.0.1',
  headers: Record<string, string> = {},
): Promise<{ status: number; location?: string; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const options = { method: 'POST', localAddress, headers };
    const req = http.request(`${url}/v2/${name}/blobs/uploads/`, options, (res) => {
      res.resume();
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          location: res.headers.location,
          retryAfter: res.headers['retry-after'] as string | undefined,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('registry upload session caps', function () {
  this.timeout(60_000);
  let registry: TestRegistry;
  let clock = Date.now();
  beforeEach(async () => {
    clock = Date.now();
    registry = await startTestRegistry({
      maxUploadSessionsPerRepo: 30,
      maxUploadSessionsPerClient: 20,
      now: () => clock,
    });
  });
  afterEach(async () => {
    await registry.close();
  });

  it('refuses a client past its open sessions with 429, and a repository past its own', async () => {
    const opened = await Promise.all(Array.from({ length: 20 }, () => startUpload(registry.url, 'caps/a')));
    expect(opened.map((answer) => answer.status)).to.deep.equal(Array(20).fill(202));
    const refused = await startUpload(registry.url, 'caps/b');
    expect(refused.status).to.equal(429);
    expect(refused.retryAfter).to.not.equal(undefined);

    // Other clients may still open sessions, until the repository has 30.
    for (let i = 0; i < 10; i++)
      expect((await startUpload(registry.url, 'caps/a', `127.0.0.${i + 2}`)).status).to.equal(202);
    expect((await startUpload(registry.url, 'caps/a', '127.0.0.99')).status).to.equal(429);
    expect((await startUpload(registry.url, 'caps/other', '127.0.0.99')).status).to.equal(202);

    // Cancelling one frees a place.
    const cancel = await fetch(new URL(opened[0]!.location!, registry.url), { method: 'DELETE' });
    expect(cancel.status).to.equal(204);
    expect((await startUpload(registry.url, 'caps/b')).status).to.equal(202);
  });

  it('expires idle sessions after an hour by default', () => {
    expect(loadOciConfig({}).uploadTimeoutSeconds).to.equal(3600);
    expect(loadOciConfig({})).to.include({ maxUploadSessionsPerRepo: 100, maxUploadSessionsPerClient: 50 });
  });

  it('frees the places of sessions idle past the upload timeout when they are purged', async () => {
    for (let i = 0; i < 20; i++) expect((await startUpload(registry.url, 'caps/a')).status).to.equal(202);
    expect((await startUpload(registry.url, 'caps/a')).status).to.equal(429);
    clock += 2 * 3600 * 1000;
    expect(await registry.app.purgeStaleUploads()).to.equal(20);
    expect((await startUpload(registry.url, 'caps/a')).status).to.equal(202);
  });
});

describe('registry upload session caps in token mode', function () {
  this.timeout(60_000);
  let dir: string;
  let registry: TestRegistry;
  before(async () => {
    const fixture = await tokenFixture();
    dir = fixture.dir;
    registry = await startTestRegistry({ authConfig: fixture.config, maxUploadSessionsPerClient: 3 });
  });
  after(async () => {
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('counts the sessions of a client through the quota wrapper too', async () => {
    const { token } = await requestToken(registry.url, USERS.alice, ['repository:home/alice/app:pull,push']);
    const headers = { authorization: `Bearer ${token}` };
    for (let i = 0; i < 3; i++)
      expect((await startUpload(registry.url, 'home/alice/app', '127.0.0.1', headers)).status).to.equal(202);
    const refused = await startUpload(registry.url, 'home/alice/app', '127.0.0.1', headers);
    expect(refused.status).to.equal(429);
    expect(refused.retryAfter).to.not.equal(undefined);
  });
});
