import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { REPO_ROOT } from '../helpers/registry.js';
import { spawnCli } from '../helpers/spawn-cli.js';
import { tokenFixture } from '../helpers/token-auth.js';

const VERSION = (
  JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

/** Holds a loopback port for the duration of `use`. */
async function withTakenPort(use: (port: number) => Promise<void>): Promise<void> {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  try {
    await use((blocker.address() as net.AddressInfo).port);
  } finally {
    await new Promise((resolve) => blocker.close(resolve));
  }
}

describe('CLI: version and start-up errors', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cli-basics-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('--version prints the package version', async () => {
    for (const flag of ['--version', '-V']) {
      const cli = spawnCli([flag], {});
      expect((await cli.exited).code).to.equal(0);
      expect(cli.logs.map((line) => line.msg)).to.deep.equal([VERSION]);
    }
  });

  it('serve: a port in use is one line naming it, no stack trace', async () => {
    await withTakenPort(async (port) => {
      const cli = spawnCli(['serve', '--port', String(port)], {
        DATA_DIR: dir,
        HEALTH_MONITOR_ENABLED: 'false',
      });
      expect((await cli.exited).code).to.equal(2);
      expect(cli.stderr().trim()).to.equal(
        `cannot listen on 127.0.0.1:${port}: port ${port} is already in use (choose another with --port)`,
      );
    });
  });

  it('registry: a port in use is one line naming it, no stack trace', async () => {
    await withTakenPort(async (port) => {
      const cli = spawnCli(
        ['registry', '--host', '127.0.0.1', '--port', String(port), '--storage-root', dir],
        {},
      );
      expect((await cli.exited).code).to.equal(2);
      expect(cli.stderr().trim()).to.equal(
        `cannot listen on 127.0.0.1:${port}: port ${port} is already in use (choose another with --port)`,
      );
    });
  });

  it('registry: warns when it would listen beyond loopback without authentication, not on loopback nor in token mode', async () => {
    // 192.0.2.1 (TEST-NET-1) is no address of this machine: the bind fails locally, nothing is sent anywhere.
    const exposed = spawnCli(['registry', '--host', '192.0.2.1', '--port', '0', '--storage-root', dir], {});
    expect((await exposed.exited).code).to.equal(2);
    const warnings = exposed.logs.filter((line) => line.level === 40).map((line) => line.msg);
    expect(warnings).to.deep.equal([
      'no authentication configured (--htpasswd): anyone who can connect may pull, push and delete',
    ]);
    expect(exposed.stderr().trim()).to.equal(
      'cannot listen on 192.0.2.1:0: 192.0.2.1 is not an address of this machine (choose another with --host)',
    );

    // Token mode (--auth-config) is authentication: the same exposed address, no warning.
    const fixture = await tokenFixture();
    try {
      const authConfig = path.join(fixture.dir, 'auth.yaml');
      await writeFile(authConfig, stringify(fixture.config));
      const tokenMode = spawnCli(
        [
          'registry',
          ...['--host', '192.0.2.1', '--port', '0'],
          ...['--storage-root', path.join(fixture.dir, 'storage'), '--auth-config', authConfig],
        ],
        {},
      );
      expect((await tokenMode.exited).code).to.equal(2);
      expect(tokenMode.logs.filter((line) => line.level === 40)).to.deep.equal([]);
      expect(tokenMode.stderr().trim()).to.equal(
        'cannot listen on 192.0.2.1:0: 192.0.2.1 is not an address of this machine (choose another with --host)',
      );
    } finally {
      await rm(fixture.dir, { recursive: true, force: true });
    }

    const local = spawnCli(['registry', '--host', '127.0.0.1', '--port', '0', '--storage-root', dir], {});
    try {
      await local.waitForLog((line) => line.msg === 'registry listening');
      expect(local.logs.filter((line) => line.level === 40)).to.deep.equal([]);
    } finally {
      local.child.kill('SIGTERM');
      await local.exited;
    }
  });
});
