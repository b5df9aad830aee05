import { randomUUID } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { expect } from 'chai';
import { CredentialCipher } from '../../src/catalog/domain/credential-cipher.js';
import { credentialsKeyPath } from '../../src/catalog/store/credentials-key-file.js';
import { EmbeddedDatabase } from '../../src/catalog/store/embedded-collection.js';
import { openRepositories } from '../../src/catalog/store/open-stores.js';
import { parseCredentialKeys } from '../../src/catalog/config.js';
import { getMongoUri } from '../helpers/mongo-server.js';
import { spawnCli, type CliProcess } from '../helpers/spawn-cli.js';
import { tempDir } from '../helpers/temp-dirs.js';

const entry = JSON.parse(readFileSync(new URL('../fixtures/entry.json', import.meta.url), 'utf8')) as Record<
  string,
  unknown
>;
const ID = String(entry.container_registry_id);
const withCredentials = {
  ...entry,
  container_registry_config: { credentials: { username: 'robot', password: 's3cret' } },
};
const GENERATED = (line: Record<string, unknown>) =>
  String(line.msg).startsWith('generated a credentials key');

async function listening(cli: CliProcess): Promise<string> {
  return String((await cli.waitForLog((line) => line.msg === 'catalog listening')).url);
}

async function create(url: string): Promise<Response> {
  return fetch(`${url}/container_registry`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(withCredentials),
  });
}

describe('serve: the credentials key', function () {
  this.timeout(60_000);
  let dataDir: string;
  let cli: CliProcess | undefined;
  beforeEach(async () => {
    dataDir = await tempDir('credentials-key-');
  });
  afterEach(async () => {
    cli?.child.kill('SIGKILL');
    await cli?.exited;
    cli = undefined;
    await rm(dataDir, { recursive: true, force: true });
  });

  it('on the embedded store, is generated once into the data directory (0600) and seals credentials', async () => {
    const env = { PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'info', HEALTH_MONITOR_ENABLED: 'false' };
    cli = spawnCli(['serve'], env);
    const url = await listening(cli);
    const file = credentialsKeyPath(dataDir);
    expect(cli.logs.filter(GENERATED).map((line) => line.file)).to.deep.equal([file]);
    expect(statSync(file).mode & 0o777).to.equal(0o600);
    const keyText = readFileSync(file, 'utf8');
    expect((await create(url)).status).to.equal(201);
    cli.child.kill('SIGTERM');
    expect((await cli.exited).code).to.equal(0);

    // A restart reuses the key, and says nothing about generating one.
    cli = spawnCli(['serve'], env);
    const again = await listening(cli);
    expect(cli.logs.filter(GENERATED)).to.deep.equal([]);
    expect(readFileSync(file, 'utf8')).to.equal(keyText);
    expect((await fetch(`${again}/container_registry/${ID}`)).status).to.equal(200);
    cli.child.kill('SIGTERM');
    expect((await cli.exited).code).to.equal(0);
    cli = undefined;

    // What is stored is sealed with that key, and opens with it.
    const { database, store } = await openRepositories(
      await EmbeddedDatabase.open(dataDir),
      'registries',
      '',
    );
    try {
      const stored = (await store.get(ID))!.document.container_registry_config as {
        credentials: { password: string };
      };
      expect(stored.credentials.password).to.match(/^aes256gcm:generated:/);
      const cipher = new CredentialCipher(parseCredentialKeys(keyText, file));
      expect(cipher.open(stored.credentials.password, ID, 'password')).to.equal('s3cret');
    } finally {
      await database.close();
    }
  });

  it('with MONGODB_URI, is never generated: credentials are refused until CREDENTIALS_KEYS is set', async () => {
    cli = spawnCli(['serve'], {
      PORT: '0',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
      HEALTH_MONITOR_ENABLED: 'false',
      MONGODB_URI: await getMongoUri(),
      MONGODB_DATABASE: `keyless_${randomUUID().slice(0, 8)}`,
    });
    const url = await listening(cli);
    const res = await create(url);
    expect(res.status).to.equal(422);
    expect(((await res.json()) as { error: string }).error).to.include('CREDENTIALS_KEYS');
    expect(cli.logs.filter(GENERATED)).to.deep.equal([]);
    expect(() => statSync(credentialsKeyPath(dataDir))).to.throw();
  });
});
