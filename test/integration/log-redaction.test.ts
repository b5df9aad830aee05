import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createToken } from '../../src/catalog/access/tokens.js';
import { spawnCli, type CliProcess } from '../helpers/spawn-cli.js';

/** Secrets in query strings never reach a log line of either server. */

const SECRETS = ['s3cr3t-access-token', 's3cr3t-token', 's3cr3t-password', 's3cr3t-api-key'];
const QUERY = `access_token=${SECRETS[0]}&token=${SECRETS[1]}&password=${SECRETS[2]}&api_key=${SECRETS[3]}&limit=5`;

describe('log redaction of query-string secrets', function () {
  this.timeout(60_000);
  let dir: string;
  let cli: CliProcess | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'log-redaction-'));
  });
  afterEach(async () => {
    cli?.child.kill('SIGKILL');
    await cli?.exited;
    cli = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  function expectRedacted(logs: Array<Record<string, unknown>>, stderr: string): void {
    const text = JSON.stringify(logs) + stderr;
    for (const secret of SECRETS) expect(text).to.not.include(secret);
    const urls = logs
      .map((line) => (line.req as { url?: string } | undefined)?.url ?? line.url)
      .filter(Boolean);
    expect(
      urls.some((url) =>
        String(url).includes('access_token=*****&token=*****&password=*****&api_key=*****&limit=5'),
      ),
    ).to.equal(true);
  }

  it('the catalog redacts them in access logs, for refused and served requests', async () => {
    const { token, entry } = createToken('ci', 'read');
    cli = spawnCli(['serve'], {
      PORT: '0',
      DATA_DIR: dir,
      HEALTH_MONITOR_ENABLED: 'false',
      LOG_LEVEL: 'info',
      API_TOKENS: entry,
    });
    const url = String((await cli.waitForLog((line) => line.msg === 'catalog listening')).url);
    expect((await fetch(`${url}/container_registries?${QUERY}`, { method: 'POST' })).status).to.equal(401);
    const served = await fetch(`${url}/container_registries?${QUERY}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(served.status).to.equal(200);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expectRedacted(cli.logs, cli.stderr());
  });

  it('the registry redacts them in its request log', async () => {
    cli = spawnCli(['registry'], {
      REGISTRY_HOST: '127.0.0.1',
      REGISTRY_PORT: '0',
      REGISTRY_STORAGE_ROOT: dir,
      LOG_LEVEL: 'info',
    });
    const url = String((await cli.waitForLog((line) => line.msg === 'registry listening')).url);
    expect((await fetch(`${url}/v2/?${QUERY}`)).status).to.equal(200);
    expect((await fetch(`${url}/v2/nothing/here/manifests/latest?${QUERY}`)).status).to.equal(404);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expectRedacted(cli.logs, cli.stderr());
  });
});
