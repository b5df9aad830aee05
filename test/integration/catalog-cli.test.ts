import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { spawnCli } from '../helpers/spawn-cli.js';
import { tempDirPerTest } from '../helpers/temp-dirs.js';

const entry = JSON.parse(readFileSync(new URL('../fixtures/entry.json', import.meta.url), 'utf8')) as Record<
  string,
  unknown
>;

/** Starts a query whose body arrives in two parts; `finish()` sends the rest and resolves with the status. */
function slowQuery(url: string): Promise<{ finish: () => Promise<number> }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/container_registries`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': '2' },
    });
    req.on('error', reject);
    const status = new Promise<number>((done) =>
      req.on('response', (res) => (res.resume(), done(res.statusCode ?? 0))),
    );
    req.write('{');
    req.on('socket', (socket) =>
      socket.on('connect', () => resolve({ finish: () => (req.end('}'), status) })),
    );
  });
}

describe('the serve command', function () {
  this.timeout(60_000);
  const dataDirNow = tempDirPerTest('catalog-cli-');

  it('prints help that lists the subcommand and its variables', async () => {
    const cli = spawnCli(['serve', '--help'], {});
    let out = '';
    cli.child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    expect((await cli.exited).code).to.equal(0);
    expect(cli.logs.map((line) => line.msg).join('\n') + out).to.include('MONGODB_URI');
  });

  it('stops at start with one line naming a bad variable', async () => {
    const cli = spawnCli(['serve'], { PORT: 'eighty', DATA_DIR: dataDirNow() });
    expect((await cli.exited).code).to.equal(2);
    expect(cli.stderr().trim()).to.equal('invalid configuration: PORT must be an integer, got "eighty"');
  });

  it('serves the seed workflow on the embedded store, keeps data across restarts and drains on SIGTERM', async () => {
    // The seed's entry points at 10.13.21.22: no probe may go there from a test (monitor off; spawnCli denies every probe target).
    const env = {
      PORT: '0',
      DATA_DIR: dataDirNow(),
      LOG_LEVEL: 'info',
      HEALTH_MONITOR_ENABLED: 'false',
    };
    let cli = spawnCli(['serve'], env);
    let url = String((await cli.waitForLog((line) => line.msg === 'catalog listening')).url);
    const created = await fetch(`${url}/container_registry`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(entry),
    });
    expect(created.status).to.equal(201);

    // A request in flight when SIGTERM arrives still gets its answer.
    const inFlight = await slowQuery(url);
    await new Promise((resolve) => setTimeout(resolve, 200));
    cli.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await inFlight.finish()).to.equal(200);
    expect((await cli.exited).code).to.equal(0);

    cli = spawnCli(['serve'], env);
    url = String((await cli.waitForLog((line) => line.msg === 'catalog listening')).url);
    const read = await fetch(`${url}/container_registry/${String(entry.container_registry_id)}`);
    expect(read.status).to.equal(200);
    expect(((await read.json()) as { data: unknown }).data).to.deep.equal(entry);
    cli.child.kill('SIGTERM');
    expect((await cli.exited).code).to.equal(0);
  });
});
