/**
 * Token mode driven by real clients: skopeo (Debian, `--creds`) and crane (go-containerregistry,
 * a docker config.json login), for the caller x namespace x operation matrix; the full matrix is
 * also covered over HTTP in test/api/oci/token-auth.test.ts.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { installGoTool } from '../../helpers/go-tools.js';
import { OciLayoutWriter } from '../../helpers/registry-oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { tempDir } from '../../helpers/temp-dirs.js';
import {
  createMatrixRobots,
  MATRIX_ALLOWED,
  matrixCallers,
  TARGETS,
  TokenClient,
  tokenFixture,
  USERS,
  type Credentials,
  type Target,
  withDockerLogin,
} from '../../helpers/token-auth.js';

const execFileAsync = promisify(execFile);

/** Exit status and stderr of a client run (never throws for a refusal). */
async function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  try {
    await execFileAsync(command, args, { env, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
    return { ok: true, stderr: '' };
  } catch (error) {
    return { ok: false, stderr: String((error as { stderr?: string }).stderr ?? error) };
  }
}

describe('registry token mode with real clients (skopeo, crane)', function () {
  this.timeout(180_000);
  let registry: TestRegistry;
  let dir: string;
  let work: string;
  let crane: string;
  const robots: Record<string, Credentials> = {};
  const callers = matrixCallers(robots);
  const allowed = MATRIX_ALLOWED;

  const skopeo = (credentials: Credentials | undefined, ...args: string[]) =>
    run('skopeo', [
      '--insecure-policy',
      ...args.slice(0, 1),
      ...(credentials === undefined
        ? []
        : args[0] === 'copy'
          ? [
              '--dest-creds',
              `${credentials.username}:${credentials.password}`,
              '--src-creds',
              `${credentials.username}:${credentials.password}`,
            ]
          : ['--creds', `${credentials.username}:${credentials.password}`]),
      ...args.slice(1),
    ]);

  /** crane with a docker config.json login for `credentials` (none: anonymous). */
  const craneAs = (credentials: Credentials | undefined, ...args: string[]) =>
    withDockerLogin(registry.host, credentials, (config) =>
      run(crane, [...args, '--insecure'], {
        PATH: process.env.PATH ?? '',
        HOME: config,
        DOCKER_CONFIG: config,
      }),
    );

  before(async () => {
    crane = installGoTool('crane');
    let config: Record<string, unknown>;
    ({ dir, config } = await tokenFixture());
    registry = await startTestRegistry({ authConfig: config });
    Object.assign(robots, await createMatrixRobots(registry.root));
    const root = new TokenClient(registry.url, USERS.root);
    for (const name of Object.values(TARGETS))
      expect((await root.pushImage(name, '1.0', Buffer.from(`layer of ${name}`))).status).to.equal(201);
    work = await tempDir('token-clients-');
    const layout = new OciLayoutWriter(path.join(work, 'source'));
    await layout.write({ app: layout.image(2, 'amd64') });
  });
  after(async () => {
    await registry?.close();
    await fs.rm(dir, { recursive: true, force: true });
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  for (const [caller, credentials] of Object.entries(callers)) {
    for (const [target, name] of Object.entries(TARGETS) as [Target, string][]) {
      const may = (operation: string) => allowed[caller]![target]?.includes(operation) ?? false;
      it(`skopeo as ${caller}: pull ${may('pull') ? 'works' : 'is refused'}, push ${may('push') ? 'works' : 'is refused'} in the ${target} namespace`, async () => {
        const pull = await skopeo(
          credentials(),
          'inspect',
          '--raw',
          '--tls-verify=false',
          `docker://${registry.host}/${name}:1.0`,
        );
        expect(pull.ok, pull.stderr).to.equal(may('pull'));
        if (!pull.ok)
          expect(pull.stderr).to.match(/unauthorized|authentication required|denied|invalid username/i);
        const push = await skopeo(
          credentials(),
          'copy',
          '--dest-tls-verify=false',
          '--src-tls-verify=false',
          `oci:${path.join(work, 'source')}:app`,
          `docker://${registry.host}/${name}:skopeo-${caller.replace(/ /g, '-')}`,
        );
        expect(push.ok, push.stderr).to.equal(may('push'));
      });
    }
    it(`crane as ${caller}: catalog, pull and delete in the private namespace`, async () => {
      const catalog = await craneAs(credentials(), 'catalog', registry.host);
      const tokenless = caller === 'expired robot' || caller === 'wrong secret';
      expect(catalog.ok, catalog.stderr).to.equal(!tokenless);
      const pull = await craneAs(credentials(), 'manifest', `${registry.host}/${TARGETS.private}:1.0`);
      expect(pull.ok, pull.stderr).to.equal(allowed[caller]!.private?.includes('pull') ?? false);
      const victim = await new TokenClient(registry.url, USERS.root).pushImage(
        TARGETS.private,
        `crane-${caller.replace(/ /g, '-')}`,
        Buffer.from(`crane victim ${caller}`),
      );
      const deleted = await craneAs(
        credentials(),
        'delete',
        `${registry.host}/${TARGETS.private}@${victim.digest}`,
      );
      expect(deleted.ok, deleted.stderr).to.equal(allowed[caller]!.private?.includes('delete') ?? false);
    });
  }

  it('crane catalog lists only what the caller may pull', async () => {
    const listing = (credentials: Credentials | undefined) =>
      withDockerLogin(registry.host, credentials, async (config) => {
        const { stdout } = await execFileAsync(crane, ['catalog', registry.host, '--insecure'], {
          env: { PATH: process.env.PATH ?? '', HOME: config, DOCKER_CONFIG: config },
        });
        return stdout
          .trim()
          .split('\n')
          .filter((line) => line !== '');
      });
    expect(await listing(undefined)).to.deep.equal(['library/app']);
    expect(await listing(robots.pull)).to.deep.equal(['home/alice/app', 'library/app']);
    expect(await listing(USERS.bob)).to.deep.equal(['home/bob/app', 'library/app']);
    expect(await listing(USERS.root)).to.deep.equal([
      'home/alice/app',
      'home/bob/app',
      'library/app',
      'misc/app',
    ]);
  });
});
