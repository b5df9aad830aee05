import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createToken } from '../../src/catalog/access/tokens.js';
import { spawnCli, type CliProcess } from '../helpers/spawn-cli.js';

/**
 * Access control of the serve process: an (empty) API_TOKENS_FILE means access control is on,
 * and refusals (no token, a bad token) count against the client's rate budget.
 */

const ID = 'b3c38f52-8f2e-43a3-9aa9-bd9a4c75e509';

describe('catalog access hardening (serve process)', function () {
  this.timeout(60_000);
  let dir: string;
  let cli: CliProcess | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'catalog-access-'));
  });
  afterEach(async () => {
    cli?.child.kill('SIGKILL');
    await cli?.exited;
    cli = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  async function serve(env: Record<string, string>): Promise<string> {
    cli = spawnCli(['serve'], {
      PORT: '0',
      DATA_DIR: path.join(dir, 'data'),
      HEALTH_MONITOR_ENABLED: 'false',
      ...env,
    });
    return String((await cli.waitForLog((line) => line.msg === 'catalog listening')).url);
  }

  it('keeps access control on with an empty API_TOKENS_FILE, and admits a token added later', async () => {
    const file = path.join(dir, 'tokens');
    await writeFile(file, '# no tokens yet\n');
    const url = await serve({ API_TOKENS_FILE: file });
    expect((await fetch(`${url}/container_registry/${ID}`)).status).to.equal(401);
    expect((await fetch(`${url}/container_registries`, { method: 'POST' })).status).to.equal(401);
    expect((await fetch(`${url}/healthz`)).status).to.equal(200);

    const { token, entry } = createToken('ci', 'read');
    await writeFile(file, `${entry}\n`);
    await cli!.waitForLog((line) => line.msg === 'API tokens reloaded', 10_000);
    const authorized = await fetch(`${url}/container_registry/${ID}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(authorized.status).to.equal(404);
    expect((await fetch(`${url}/container_registry/${ID}`)).status).to.equal(401);
  });

  it('counts requests without or with a bad token against the address budget', async () => {
    const { entry } = createToken('ci', 'read');
    const url = await serve({ API_TOKENS: entry, RATE_LIMIT_PER_SECOND: '20' });
    const statuses = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        fetch(`${url}/container_registry/${ID}`, {
          headers: i % 2 === 0 ? { authorization: 'Bearer aios_not-a-real-token' } : {},
        }).then(async (res) => (await res.arrayBuffer(), res.status)),
      ),
    );
    const limited = statuses.filter((status) => status === 429).length;
    expect(limited, JSON.stringify(statuses)).to.be.greaterThan(50);
    expect(statuses.filter((status) => status === 401).length).to.be.within(1, 20);
  });
});
