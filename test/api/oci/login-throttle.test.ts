import { expect } from 'chai';
import bcrypt from 'bcryptjs';
import http from 'node:http';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { tempDir } from '../../helpers/temp-dirs.js';
import { SERVICE, tokenFixture, USERS } from '../../helpers/token-auth.js';

/**
 * htpasswd logins on the registry (port 0): bcrypt never holds the event loop, failed logins
 * are throttled per client and per user (429 + Retry-After), unknown users cost what wrong
 * passwords cost, and a good login is remembered.
 */

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** GET /v2/ (or `target`) from a chosen loopback address (each address is another client). */
function get(
  url: string,
  authorization: string | undefined,
  localAddress = '127.0.0.1',
  target = '/v2/',
): Promise<{ status: number; retryAfter: string | undefined; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get(
      `${url}${target}`,
      { localAddress, headers: authorization ? { authorization } : {} },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers['retry-after'] as string | undefined,
            ms: performance.now() - started,
          }),
        );
      },
    );
    req.on('error', reject);
  });
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

describe('registry htpasswd logins', function () {
  this.timeout(60_000);
  let dir: string;
  let registry: TestRegistry;
  beforeEach(async () => {
    dir = await tempDir('htpasswd-throttle-');
    const file = path.join(dir, 'htpasswd');
    await writeFile(file, `alice:${bcrypt.hashSync('right', 8)}\nbob:${bcrypt.hashSync('also-right', 8)}\n`);
    registry = await startTestRegistry({ htpasswd: file });
  });
  afterEach(async () => {
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps anonymous /v2/ fast while 50 wrong passwords are checked in parallel', async () => {
    const attack = Array.from({ length: 50 }, (_, i) => get(registry.url, basic('alice', `wrong-${i}`)));
    const probes: number[] = [];
    let done = false;
    void Promise.all(attack).then(() => (done = true));
    while (!done) {
      probes.push((await get(registry.url, undefined, '127.0.0.9')).ms);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const statuses = (await Promise.all(attack)).map((answer) => answer.status);
    expect(statuses.every((status) => status === 401 || status === 429)).to.equal(true);
    console.log(
      `      anonymous /v2/ during 50 parallel wrong logins: ${probes.length} probes, median ${median(probes).toFixed(1)} ms, max ${Math.max(...probes).toFixed(1)} ms`,
    );
    expect(probes.length).to.be.greaterThan(3);
    expect(Math.max(...probes), JSON.stringify(probes.map(Math.round))).to.be.below(500);
  });

  it('answers 429 with Retry-After once a client has used up its failed logins, and per user across clients', async () => {
    for (let i = 0; i < 20; i++)
      expect((await get(registry.url, basic('bob', 'wrong'))).status).to.equal(401);
    const blocked = await get(registry.url, basic('bob', 'wrong'));
    expect(blocked.status).to.equal(429);
    expect(Number(blocked.retryAfter)).to.be.within(1, 60);
    // Even the right password waits on that client; another client is not affected.
    expect((await get(registry.url, basic('bob', 'also-right'))).status).to.equal(429);
    expect((await get(registry.url, basic('bob', 'also-right'), '127.0.0.2')).status).to.equal(200);

    // Per user: failures for alice spread over clients add up.
    for (let i = 0; i < 30; i++)
      expect((await get(registry.url, basic('alice', 'wrong'), `127.0.1.${i}`)).status).to.equal(401);
    const user = await get(registry.url, basic('alice', 'wrong'), '127.0.2.1');
    expect(user.status).to.equal(429);
    expect(user.retryAfter).to.not.equal(undefined);
    expect((await get(registry.url, basic('bob', 'also-right'), '127.0.2.1')).status).to.equal(200);
  });

  it('takes as long for an unknown user as for a wrong password, and remembers a good login', async () => {
    const unknown: number[] = [];
    const wrong: number[] = [];
    for (let i = 0; i < 6; i++) {
      unknown.push((await get(registry.url, basic(`nobody-${i}`, 'x'), `127.0.3.${i}`)).ms);
      wrong.push((await get(registry.url, basic('alice', `x-${i}`), `127.0.4.${i}`)).ms);
    }
    const ratio = median(unknown) / median(wrong);
    expect(ratio, `unknown ${median(unknown)} ms, wrong ${median(wrong)} ms`).to.be.within(0.5, 2);

    const first = await get(registry.url, basic('alice', 'right'), '127.0.5.1');
    expect(first.status).to.equal(200);
    const again: number[] = [];
    for (let i = 0; i < 5; i++)
      again.push((await get(registry.url, basic('alice', 'right'), '127.0.5.1')).ms);
    expect(median(again)).to.be.below(median(wrong) / 2);
  });
});

describe('token endpoint logins (token mode)', function () {
  this.timeout(60_000);
  let dir: string;
  let registry: TestRegistry;
  before(async () => {
    const fixture = await tokenFixture();
    dir = fixture.dir;
    registry = await startTestRegistry({ authConfig: fixture.config });
  });
  after(async () => {
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('limits failed logins at /auth/token per client, as Basic auth on /v2/ does', async () => {
    const token = `/auth/token?service=${SERVICE}`;
    const bob = USERS.bob.username;
    for (let i = 0; i < 20; i++)
      expect((await get(registry.url, basic(bob, 'wrong'), '127.0.6.1', token)).status).to.equal(401);
    const blocked = await get(registry.url, basic(bob, 'wrong'), '127.0.6.1', token);
    expect(blocked.status).to.equal(429);
    expect(Number(blocked.retryAfter)).to.be.within(1, 60);
    expect((await get(registry.url, basic(bob, USERS.bob.password), '127.0.6.2', token)).status).to.equal(
      200,
    );
  });
});
