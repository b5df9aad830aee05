import fs from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { spawnCli } from '../../helpers/spawn-cli.js';
import { decodeJwt, requestToken, TokenClient, tokenFixture, USERS } from '../../helpers/token-auth.js';

/** Runs a one-shot CLI command; its stdout lines, stderr and exit code. */
async function cli(args: string[], env: Record<string, string> = {}) {
  const child = spawnCli(args, env);
  const { code } = await child.exited;
  // spawnCli parses JSON lines (`robot list --json`): give them back as text.
  const lines = child.logs.map((line) => (typeof line.msg === 'string' ? line.msg : JSON.stringify(line)));
  return { code, lines, stderr: child.stderr() };
}

describe('registry token mode from the CLI: robots, quota show, reload', function () {
  this.timeout(60_000);
  let dir: string;
  let root: string;
  let configFile: string;
  let config: Record<string, unknown>;

  before(async () => {
    ({ dir, config } = await tokenFixture());
    root = path.join(dir, 'storage');
    configFile = path.join(dir, 'auth.yaml');
    config.namespaces = [
      ...(config.namespaces as object[]),
      { prefix: 'ci/', quota_bytes: 1_000_000, rules: [] },
    ];
    await writeConfig(config);
  });
  after(async () => fs.rm(dir, { recursive: true, force: true }));
  /**
   * Replaces the config file in one rename, as a ConfigMap update or an editor's save does: a
   * write in place is seen by the 2 s file poll half-written (its own failed reload, logged
   * before the one under test).
   */
  const writeConfig = async (value: unknown) => {
    await fs.writeFile(`${configFile}.new`, stringify(value));
    await fs.rename(`${configFile}.new`, configFile);
  };

  it('refuses a config file with an unknown key in one line naming it (exit 2)', async () => {
    const bad = path.join(dir, 'bad.yaml');
    await fs.writeFile(bad, stringify({ ...config, namespaces: [{ prefix: 'a/', quota: 5 }] }));
    const result = await cli(['registry', '--port', '0', '--storage-root', root, '--auth-config', bad]);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.equal(
      `invalid configuration: REGISTRY_AUTH_CONFIG ${bad}: unknown key namespaces.0.quota\n`,
    );
  });

  it('creates, lists, rotates and deletes robots; the secret is printed once and stored hashed', async () => {
    const createRobot = (name: string, actions: string, ...more: string[]) =>
      cli([
        ...['registry', 'robot', 'create', '--name', name, '--namespace', 'ci/', '--actions', actions],
        ...more,
        ...['--storage-root', root],
      ]);
    const created = await createRobot('ci-bot', 'pull,push', '--expires-days', '30');
    expect(created.code, created.stderr).to.equal(0);
    expect(created.lines[0]).to.equal('account: robot_ci-bot');
    const secret = /^secret: (\S+)$/.exec(created.lines[1] ?? '')?.[1];
    expect(secret).to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(`${created.lines.join('')}`).to.not.include('$');
    const stored = await fs.readFile(path.join(root, '_auth', 'robots.json'), 'utf8');
    expect(stored).to.not.include(secret!);
    expect(stored).to.include('secretSha256');

    const duplicate = await createRobot('ci-bot', 'pull');
    expect(duplicate.code).to.equal(1);
    expect(duplicate.stderr).to.include('robot ci-bot already exists');
    const dollar = await createRobot('robot$ci', 'pull');
    expect(dollar.code).to.equal(1);

    const server = spawnCli(
      ['registry', '--host', '127.0.0.1', '--port', '0', '--storage-root', root, '--auth-config', configFile],
      {
        LOG_LEVEL: 'info',
      },
    );
    try {
      const url = String((await server.waitForLog((line) => line.msg === 'registry listening')).url);
      const robot = { username: 'robot_ci-bot', password: secret! };
      const pushed = await new TokenClient(url, robot).pushImage('ci/app', '1', Buffer.from('layer'));
      expect(pushed.status).to.equal(201);

      const listed = await cli(['registry', 'robot', 'list', '--json', '--storage-root', root]);
      const [entry] = JSON.parse(listed.lines[0]!) as Record<string, unknown>[];
      expect(entry).to.include({ account: 'robot_ci-bot', prefix: 'ci/' });
      expect(entry!.actions).to.deep.equal(['pull', 'push']);
      expect(Date.parse(String(entry!.expiresAt)) - Date.now()).to.be.closeTo(30 * 86_400_000, 60_000);
      expect(Date.parse(String(entry!.lastUsedAt))).to.be.closeTo(Date.now(), 30_000);
      expect(entry).to.not.have.property('secretSha256');

      const shown = await cli([
        'registry',
        'quota',
        'show',
        '--storage-root',
        root,
        '--auth-config',
        configFile,
      ]);
      expect(shown.code, shown.stderr).to.equal(0);
      expect(shown.lines[0]).to.equal('NAMESPACE\tUSED\tRESERVED\tQUOTA\tUSE');
      const ci = shown.lines.find((line) => line.startsWith('ci/\t'))!;
      expect(ci).to.match(/^ci\/\t\d{3} \(\d{3} B\)\t0 \(0 B\)\t1000000 \(976\.6 KiB\)\t0\.\d%$/);

      const rotated = await cli([
        'registry',
        'robot',
        'rotate',
        '--name',
        'robot_ci-bot',
        '--storage-root',
        root,
      ]);
      const newSecret = /^secret: (\S+)$/.exec(rotated.lines[1] ?? '')?.[1];
      expect(newSecret).to.be.a('string').and.not.equal(secret);
      // The server re-reads robots.json within a second.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      expect((await requestToken(url, robot, ['repository:ci/app:pull'])).status).to.equal(401);
      expect(
        (await requestToken(url, { ...robot, password: newSecret! }, ['repository:ci/app:pull'])).status,
      ).to.equal(200);

      expect(
        (await cli(['registry', 'robot', 'delete', '--name', 'ci-bot', '--storage-root', root])).code,
      ).to.equal(0);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      expect(
        (await requestToken(url, { ...robot, password: newSecret! }, ['repository:ci/app:pull'])).status,
      ).to.equal(401);

      // SIGHUP applies a changed file; an invalid one leaves the rules in force.
      const grantBob = structuredClone(config) as { namespaces: { prefix: string; rules?: unknown[] }[] };
      grantBob.namespaces
        .find((namespace) => namespace.prefix === 'home/alice/')!
        .rules!.push({ subjects: ['bob'], actions: ['pull'] });
      await writeConfig(grantBob);
      server.child.kill('SIGHUP');
      await server.waitForLog((line) => line.msg === 'auth config reloaded');
      const bob = await requestToken(url, USERS.bob, ['repository:home/alice/app:pull']);
      expect(decodeJwt(bob.token!).claims.access).to.deep.equal([
        { type: 'repository', name: 'home/alice/app', actions: ['pull'] },
      ]);
      await writeConfig({ ...grantBob, surprise: true });
      server.child.kill('SIGHUP');
      const failed = await server.waitForLog(
        (line) => line.msg === 'auth config reload failed; the previous configuration stays in force',
      );
      expect(JSON.stringify(failed)).to.include('unknown key surprise');
      const still = await requestToken(url, USERS.bob, ['repository:home/alice/app:pull']);
      // A change on disk alone (a ConfigMap update) is picked up too, within the 2 s poll.
      const reloads = () => server.logs.filter((line) => line.msg === 'auth config reloaded').length;
      const before = reloads();
      await writeConfig(config);
      for (let i = 0; i < 100 && reloads() === before; i += 1)
        await new Promise((resolve) => setTimeout(resolve, 100));
      expect(reloads()).to.be.above(before);
      // A user added to the htpasswd file can log in once the registry notices the file changed.
      const carol = { username: 'carol', password: 'carol-pw' };
      expect((await requestToken(url, carol, [])).status).to.equal(401);
      const reloadsBefore = reloads();
      await fs.appendFile(String(config.htpasswd), `\ncarol:${bcrypt.hashSync('carol-pw', 4)}\n`);
      for (let i = 0; i < 100 && reloads() === reloadsBefore; i += 1)
        await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await requestToken(url, carol, [])).status).to.equal(200);
      const revoked = await requestToken(url, USERS.bob, ['repository:home/alice/app:pull']);
      expect(decodeJwt(revoked.token!).claims.access).to.deep.equal([
        { type: 'repository', name: 'home/alice/app', actions: [] },
      ]);
      expect(decodeJwt(still.token!).claims.access).to.deep.equal([
        { type: 'repository', name: 'home/alice/app', actions: ['pull'] },
      ]);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
      await writeConfig(config);
    }
  });
});
