/**
 * One token service for several registries: CNCF Distribution (Debian 2.8.2 and 3.1.2) configured
 * with `auth.token` = our realm and our certificate accepts our tokens for skopeo pushes and
 * pulls, and refuses what our rules deny.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { installGoTool } from '../../helpers/go-tools.js';
import { OciLayoutWriter } from '../../helpers/registry-oci-layout.js';
import {
  DISTRIBUTION_BINARY,
  startDistribution,
  startTestRegistry,
  type TestRegistry,
} from '../../helpers/registry.js';
import { tempDir } from '../../helpers/temp-dirs.js';
import { SERVICE, tokenFixture, USERS, type Credentials } from '../../helpers/token-auth.js';

const execFileAsync = promisify(execFile);

async function skopeo(credentials: Credentials | undefined, ...args: string[]) {
  const creds =
    credentials === undefined ? [] : ['--creds', `${credentials.username}:${credentials.password}`];
  const [command = '', ...rest] = args;
  const flags =
    command === 'copy'
      ? credentials === undefined
        ? []
        : [
            '--dest-creds',
            `${credentials.username}:${credentials.password}`,
            '--src-creds',
            `${credentials.username}:${credentials.password}`,
          ]
      : creds;
  try {
    const { stdout } = await execFileAsync('skopeo', ['--insecure-policy', command, ...flags, ...rest], {
      timeout: 60_000,
    });
    return { ok: true, stdout, stderr: '' };
  } catch (error) {
    return { ok: false, stdout: '', stderr: String((error as { stderr?: string }).stderr ?? error) };
  }
}

describe('registry token service for CNCF Distribution (auth.token with our certificate)', function () {
  this.timeout(120_000);
  let tokens: TestRegistry;
  let dir: string;
  let source: string;
  let bundle: string;
  let digest: string;

  before(async () => {
    let config: Record<string, unknown>;
    ({ dir, config } = await tokenFixture());
    tokens = await startTestRegistry({ authConfig: config });
    bundle = path.join(dir, 'token-certs.pem');
    await fs.writeFile(bundle, await (await fetch(`${tokens.url}/auth/certificates.pem`)).text());
    source = path.join(await tempDir('token-distribution-'), 'layout');
    const layout = new OciLayoutWriter(source);
    const image = layout.image(2, 'amd64');
    digest = image.digest;
    await layout.write({ app: image });
  });
  after(async () => {
    await tokens?.close();
    await fs.rm(dir, { recursive: true, force: true });
    if (source) await fs.rm(path.dirname(source), { recursive: true, force: true });
  });

  for (const [version, binary] of [
    ['2.8.2 (Debian)', () => DISTRIBUTION_BINARY],
    ['3.1.2', () => installGoTool('registry')],
  ] as const) {
    it(`Distribution ${version} accepts our tokens for pushes and pulls and refuses what the rules deny`, async () => {
      const distribution = await startDistribution({
        binary: binary(),
        extraConfig: [
          'auth:',
          '  token:',
          `    realm: ${tokens.url}/auth/token`,
          `    service: ${SERVICE}`,
          `    issuer: ${SERVICE}`,
          `    rootcertbundle: ${bundle}`,
        ],
      });
      try {
        const challenge = await fetch(`${distribution.url}/v2/`);
        expect(challenge.status).to.equal(401);
        expect(challenge.headers.get('www-authenticate')).to.include(`realm="${tokens.url}/auth/token"`);

        const target = `docker://${distribution.host}/home/alice/app:1.0`;
        const push = await skopeo(
          USERS.alice,
          'copy',
          '--dest-tls-verify=false',
          `oci:${source}:app`,
          target,
        );
        expect(push.ok, push.stderr).to.equal(true);
        const pull = await skopeo(USERS.alice, 'inspect', '--tls-verify=false', target);
        expect(pull.ok, pull.stderr).to.equal(true);
        expect((JSON.parse(pull.stdout) as { Digest: string }).Digest).to.equal(digest);

        // Our rules decide at Distribution too: bob may not read or write alice's namespace.
        const denied = await skopeo(USERS.bob, 'inspect', '--tls-verify=false', target);
        expect(denied.ok).to.equal(false);
        expect(denied.stderr).to.match(/unauthorized|denied|authentication required/i);
        const deniedPush = await skopeo(
          USERS.bob,
          'copy',
          '--dest-tls-verify=false',
          `oci:${source}:app`,
          `docker://${distribution.host}/home/alice/bob-was-here:1.0`,
        );
        expect(deniedPush.ok).to.equal(false);
        // Public namespaces: anonymous pulls.
        const library = `docker://${distribution.host}/library/app:1.0`;
        expect(
          (await skopeo(USERS.root, 'copy', '--dest-tls-verify=false', `oci:${source}:app`, library)).ok,
        ).to.equal(true);
        const anonymous = await skopeo(undefined, 'inspect', '--raw', '--tls-verify=false', library);
        expect(anonymous.ok, anonymous.stderr).to.equal(true);
      } finally {
        await distribution.stop();
      }
    });
  }
});
