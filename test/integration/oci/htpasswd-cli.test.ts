import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import { expect } from 'chai';
import { OciLayoutWriter } from '../../helpers/registry-oci-layout.js';
import { freePort } from '../../helpers/ports.js';
import { DISTRIBUTION_BINARY, startChild, startTestRegistry, waitForHttp } from '../../helpers/registry.js';
import { CLI } from '../../helpers/spawn-cli.js';
import { tempDir } from '../../helpers/temp-dirs.js';

const execFileAsync = promisify(execFile);

/** Runs `registry htpasswd add` with `stdin` piped in (not a terminal). */
function htpasswdAdd(args: string[], stdin: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'registry', 'htpasswd', 'add', ...args], {
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(stdin);
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});

describe('registry htpasswd add', function () {
  this.timeout(60_000);
  let work: string;
  let file: string;

  before(async () => {
    work = await tempDir('htpasswd-cli-');
    file = path.join(work, 'htpasswd');
    expect(await htpasswdAdd(['alice', '--file', file], 'first\n')).to.deep.equal({
      code: 0,
      stderr: `added alice in ${file}\n`,
    });
    expect((await htpasswdAdd(['bob', '--file', file], 'b0b-pass')).code).to.equal(0);
    expect(await htpasswdAdd(['alice', '--file', file], 'second\n')).to.deep.equal({
      code: 0,
      stderr: `updated alice in ${file}\n`,
    });
  });
  after(async () => {
    await fs.rm(work, { recursive: true, force: true });
  });

  it('writes one bcrypt line per user into a file only its owner can read', async () => {
    const lines = (await fs.readFile(file, 'utf8')).trimEnd().split('\n');
    expect(lines.map((line) => line.split(':')[0])).to.deep.equal(['alice', 'bob']);
    for (const line of lines) expect(line).to.match(/^\w+:\$2y\$10\$[./A-Za-z0-9]{53}$/);
    expect((await fs.stat(file)).mode & 0o777).to.equal(0o600);
  });

  it('refuses a bad user name or an empty password, changing nothing', async () => {
    const before = await fs.readFile(file, 'utf8');
    const badUser = await htpasswdAdd(['a:b', '--file', file], 'pw');
    expect(badUser.code).to.equal(1);
    expect(badUser.stderr).to.match(/^error: user name must be non-empty without spaces or ':'/);
    const empty = await htpasswdAdd(['carol', '--file', file], '\n');
    expect(empty.code).to.equal(1);
    expect(empty.stderr).to.match(/^error: password must not be empty/);
    expect(await fs.readFile(file, 'utf8')).to.equal(before);
  });

  it('at a terminal, asks twice without echoing the password', async () => {
    const ttyFile = path.join(work, 'htpasswd-tty');
    const command = [
      process.execPath,
      '--import',
      'tsx',
      CLI,
      'registry',
      'htpasswd',
      'add',
      'tty',
      '--file',
      ttyFile,
    ]
      .map((arg) => `'${arg}'`)
      .join(' ');
    // util-linux `script` runs the command on a pseudo-terminal, as a person's shell would.
    const child = spawn('script', ['-qfc', command, '/dev/null'], {
      env: { PATH: process.env.PATH ?? '', TERM: 'dumb' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let screen = '';
    let answered = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      screen += chunk.toString();
      const prompts = screen.split(/Password: /i).length - 1;
      while (answered < prompts) {
        answered += 1;
        child.stdin.write('t3rminal-pw\r');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    child.stdin.end();
    expect(code).to.equal(0);
    expect(answered).to.equal(2);
    expect(screen).to.include(`added tty in ${ttyFile}`);
    expect(screen).to.not.include('t3rminal-pw');
    const [, hash] = (await fs.readFile(ttyFile, 'utf8')).trim().split(':');
    expect(bcrypt.compareSync('t3rminal-pw', hash!)).to.equal(true);
  });

  it('is accepted by the bundled registry: skopeo pushes with the new password, the old one is refused', async () => {
    const registry = await startTestRegistry({ htpasswd: file });
    try {
      expect((await fetch(`${registry.url}/v2/`, { headers: basic('alice', 'second') })).status).to.equal(
        200,
      );
      expect((await fetch(`${registry.url}/v2/`, { headers: basic('bob', 'b0b-pass') })).status).to.equal(
        200,
      );
      expect((await fetch(`${registry.url}/v2/`, { headers: basic('alice', 'first') })).status).to.equal(401);
      const source = path.join(work, 'layout');
      const layout = new OciLayoutWriter(source);
      await layout.write({ app: layout.image(1, 'amd64') });
      await execFileAsync('skopeo', [
        '--insecure-policy',
        'copy',
        '--dest-tls-verify=false',
        '--dest-creds',
        'alice:second',
        `oci:${source}:app`,
        `docker://${registry.host}/team/app:1.0`,
      ]);
      const tags = await fetch(`${registry.url}/v2/team/app/tags/list`, {
        headers: basic('bob', 'b0b-pass'),
      });
      expect(await tags.json()).to.deep.equal({ name: 'team/app', tags: ['1.0'] });
    } finally {
      await registry.close();
    }
  });

  it('is accepted by CNCF Distribution as written', async () => {
    const port = await freePort();
    const config = path.join(work, 'distribution.yml');
    await fs.writeFile(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: error',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${path.join(work, 'distribution-data')}`,
        'auth:',
        '  htpasswd:',
        '    realm: test',
        `    path: ${file}`,
        'http:',
        `  addr: 127.0.0.1:${port}`,
        '',
      ].join('\n'),
    );
    const distribution = startChild(DISTRIBUTION_BINARY, ['serve', config]);
    try {
      const url = `http://127.0.0.1:${port}`;
      await waitForHttp(`${url}/v2/`);
      expect((await fetch(`${url}/v2/`, { headers: basic('alice', 'second') })).status).to.equal(200);
      expect((await fetch(`${url}/v2/`, { headers: basic('alice', 'first') })).status).to.equal(401);
    } finally {
      await distribution.stop();
    }
  });
});
