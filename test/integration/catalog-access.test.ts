import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { createToken } from '../../src/catalog/access/tokens.js';
import { CredentialCipher } from '../../src/catalog/domain/credential-cipher.js';
import { EmbeddedDatabase } from '../../src/catalog/store/embedded-collection.js';
import { openRegistryStore } from '../../src/catalog/store/registry-store.js';
import { spawnCli, type CliProcess } from '../helpers/spawn-cli.js';
import { tempDirPerTest } from '../helpers/temp-dirs.js';

const listening = (cli: CliProcess) =>
  cli.waitForLog((line) => line.msg === 'catalog listening').then((line) => String(line.url));

const body = (name: string) =>
  JSON.stringify({
    container_registry_name: name,
    container_registry_public_url: 'http://127.0.0.1:9',
  });

describe('serve: access control, bind rule, timeouts and key rotation', function () {
  this.timeout(60_000);
  const dirNow = tempDirPerTest('catalog-access-');

  const base = () => ({ PORT: '0', DATA_DIR: dirNow(), LOG_LEVEL: 'info', HEALTH_MONITOR_ENABLED: 'false' });

  it('refuses to listen beyond loopback without tokens, unless told to', async () => {
    // The configuration is refused before anything binds.
    const refused = spawnCli(['serve'], { ...base(), HOST: '0.0.0.0' });
    expect((await refused.exited).code).to.equal(2);
    expect(refused.stderr()).to.include('invalid configuration: HOST is 0.0.0.0, not a loopback address');
    expect(refused.stderr()).to.include('--allow-unauthenticated');

    // On loopback without tokens it starts, and says that access control is off.
    const open = spawnCli(['serve'], base());
    await listening(open);
    const warning = await open.waitForLog((line) => String(line.msg).startsWith('no API tokens configured'));
    expect(warning.level).to.equal(40);
    open.child.kill('SIGTERM');
    await open.exited;
  });

  it('reads hashed tokens from a file and applies revocations without a restart', async () => {
    const admin = createToken('ops', 'admin');
    const reader = createToken('dashboard', 'read');
    const file = path.join(dirNow(), 'tokens');
    await writeFile(file, `# API tokens\n${admin.entry}\n${reader.entry}\n`);
    const cli = spawnCli(['serve'], { ...base(), API_TOKENS_FILE: file });
    const url = await listening(cli);
    try {
      const as = (token: string) => ({
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
      });
      expect((await fetch(`${url}/container_registries`, { method: 'POST' })).status).to.equal(401);
      expect((await fetch(`${url}/healthz`)).status).to.equal(200);
      const created = await fetch(`${url}/container_registry`, {
        method: 'POST',
        headers: as(admin.token),
        body: body('a'),
      });
      expect(created.status).to.equal(201);
      expect((await fetch(`${url}/metrics`, { headers: as(reader.token) })).status).to.equal(403);
      expect(
        (await fetch(`${url}/container_registries`, { method: 'POST', headers: as(reader.token) })).status,
      ).to.equal(200);

      await writeFile(file, `${admin.entry}\n`); // the dashboard's token is revoked
      await cli.waitForLog((line) => line.msg === 'API tokens reloaded');
      expect(
        (await fetch(`${url}/container_registries`, { method: 'POST', headers: as(reader.token) })).status,
      ).to.equal(401);
      expect(
        (await fetch(`${url}/container_registries`, { method: 'POST', headers: as(admin.token) })).status,
      ).to.equal(200);

      await writeFile(file, 'not a token entry\n'); // a broken file keeps the tokens already loaded
      await cli.waitForLog(
        (line) => line.msg === 'API tokens file not reloaded, keeping the previous tokens',
      );
      expect(
        (await fetch(`${url}/container_registries`, { method: 'POST', headers: as(admin.token) })).status,
      ).to.equal(200);

      // Tokens never reach the logs.
      const logs = JSON.stringify(cli.logs) + cli.stderr();
      for (const token of [admin.token, reader.token]) expect(logs).not.to.include(token);
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
  });

  it('cuts off a client that sends its headers too slowly (slowloris)', async () => {
    const cli = spawnCli(['serve'], { ...base(), HEADERS_TIMEOUT_MS: '500' });
    const url = new URL(await listening(cli));
    try {
      const socket = net.connect(Number(url.port), '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      const started = Date.now();
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
      socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
      const drip = setInterval(() => socket.write('X-Slow: 1\r\n'), 100);
      await new Promise((resolve) => socket.once('close', resolve));
      clearInterval(drip);
      expect(Date.now() - started).to.be.below(3_000);
      expect(answer).to.match(/^HTTP\/1.1 408/);
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
  });

  it('rotate-credentials re-encrypts every credential with the new key; the old key can then go', async () => {
    const oldKey = `old:${randomBytes(32).toString('base64')}`;
    const newKey = `new:${randomBytes(32).toString('base64')}`;
    const admin = createToken('ops', 'admin');
    const env = { ...base(), API_TOKENS: admin.entry, CREDENTIALS_KEYS: oldKey };
    const headers = { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' };
    let cli = spawnCli(['serve'], env);
    let url = await listening(cli);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${url}/container_registry`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          container_registry_name: `r${i}`,
          container_registry_public_url: 'http://127.0.0.1:9',
          container_registry_config: { credentials: { username: 'robot', password: `secret-${i}` } },
        }),
      });
      expect(res.status).to.equal(201);
      ids.push(((await res.json()) as { data: { id: string } }).data.id);
    }
    cli.child.kill('SIGTERM');
    await cli.exited;

    const rotate = (keys: string, ...args: string[]) => {
      const run = spawnCli(['rotate-credentials', ...args], {
        DATA_DIR: dirNow(),
        CREDENTIALS_KEYS: keys,
        LOG_LEVEL: 'warn',
      });
      let out = '';
      run.child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
      return run.exited.then(({ code }) => ({ code, report: JSON.parse(out.slice(out.indexOf('{'))) }));
    };
    const dry = await rotate(`${newKey},${oldKey}`, '--dry-run');
    expect(dry.code).to.equal(0);
    expect(dry.report.resealed).to.have.length(3);
    const done = await rotate(`${newKey},${oldKey}`);
    expect(done.report).to.deep.include({ key: 'new', scanned: 3, unreadable: [] });
    expect(done.report.resealed.sort()).to.deep.equal([...ids].sort());
    expect((await rotate(`${newKey},${oldKey}`)).report.resealed).to.deep.equal([]); // idempotent

    // Every stored value is now sealed with the new key and opens with it alone.
    const store = await openRegistryStore(await EmbeddedDatabase.open(dirNow()), 'registries');
    try {
      const cipher = new CredentialCipher([{ id: 'new', key: Buffer.from(newKey.slice(4), 'base64') }]);
      for (const [i, id] of ids.entries()) {
        const sealed = (await store.get(id))!.document.container_registry_config.credentials as Record<
          string,
          string
        >;
        expect(CredentialCipher.keyIdOf(sealed.password!)).to.equal('new');
        expect(cipher.open(sealed.password!, id, 'password')).to.equal(`secret-${i}`);
      }
    } finally {
      await store.close();
    }

    // A server with only the new key still serves them (masked), and rotating with an unrelated key reports them.
    cli = spawnCli(['serve'], { ...env, CREDENTIALS_KEYS: newKey });
    url = await listening(cli);
    const read = await fetch(`${url}/container_registry/${ids[0]}`, { headers });
    expect(
      ((await read.json()) as { data: { container_registry_config: unknown } }).data
        .container_registry_config,
    ).to.deep.equal({
      credentials: { username: '*****', password: '*****' },
    });
    cli.child.kill('SIGTERM');
    await cli.exited;
    const stranger = await rotate(`other:${randomBytes(32).toString('base64')}`);
    expect(stranger.code).to.equal(1);
    expect(stranger.report.unreadable).to.have.length(3);
  });
});
