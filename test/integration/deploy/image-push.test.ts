import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../../helpers/go-tools.js';
import { spawnCli, type CliProcess } from '../../helpers/spawn-cli.js';
import { freePort } from '../../helpers/ports.js';

const execFileAsync = promisify(execFile);

/** Instructions of the Dockerfile's final stage, as `[keyword, argument]` pairs. */
function finalStage(): Array<[string, string]> {
  const lines = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
    .split('\n')
    .filter((line) => /^[A-Z]+ /.test(line));
  const from = lines.map((line) => line.startsWith('FROM ')).lastIndexOf(true);
  return lines.slice(from).map((line) => {
    const space = line.indexOf(' ');
    return [line.slice(0, space), line.slice(space + 1).trim()];
  });
}

/*
 * The Dockerfile itself cannot be built here: its base images (node:24-bookworm*) live on Docker
 * Hub, which is unreachable. What can be checked is the path the README's step 1 takes after the
 * build: an image carrying the Dockerfile's runtime configuration, built by buildah (FROM scratch,
 * no RUN step, so no container runtime is needed), pushed into our bundled registry and read back.
 */
describe('deploy: an image pushed by buildah into the bundled registry', function () {
  this.timeout(120_000);
  let work: string;
  let registry: CliProcess;
  let port: number;
  const buildah = (...args: string[]) =>
    execFileAsync(
      'buildah',
      [
        '--storage-driver',
        'vfs',
        '--root',
        path.join(work, 'root'),
        '--runroot',
        path.join(work, 'run'),
        ...args,
      ],
      { encoding: 'utf8', maxBuffer: 16 << 20 },
    ).then((result) => result.stdout.trim());
  const skopeo = (...args: string[]) =>
    execFileAsync('skopeo', ['--insecure-policy', ...args], { encoding: 'utf8', maxBuffer: 16 << 20 }).then(
      (result) => result.stdout,
    );

  before(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'deploy-image-'));
    port = await freePort();
    registry = spawnCli(['registry'], {
      REGISTRY_HOST: '127.0.0.1',
      REGISTRY_PORT: String(port),
      REGISTRY_STORAGE_ROOT: path.join(work, 'storage'),
      LOG_LEVEL: 'warn',
    });
    for (let attempt = 0; attempt < 100; attempt++) {
      const ok = await fetch(`http://127.0.0.1:${port}/v2/`).then(
        (res) => res.status === 200,
        () => false,
      );
      if (ok) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`registry did not start: ${registry.stderr()}`);
  });

  after(async () => {
    registry.child.kill('SIGTERM');
    await registry.exited;
    rmSync(work, { recursive: true, force: true });
  });

  it("keeps the Dockerfile's entrypoint, command, user, ports and environment through push and pull", async () => {
    const stage = finalStage();
    const value = (keyword: string) => stage.filter(([k]) => k === keyword).map(([, v]) => v);
    const container = await buildah('from', 'scratch');
    for (const file of ['package.json', 'openapi.yaml'])
      await buildah('copy', container, path.join(ROOT, file), `/app/${file}`);
    const config = [
      ['--entrypoint', value('ENTRYPOINT')[0]!],
      ['--cmd', (JSON.parse(value('CMD')[0]!) as string[]).join(' ')],
      ['--user', value('USER')[0]!],
      ['--workingdir', value('WORKDIR')[0]!],
      ...value('EXPOSE').flatMap((line) => line.split(/\s+/).map((p) => ['--port', p])),
      ...value('ENV').map((env) => ['--env', env]),
    ].flat();
    await buildah('config', ...config, container);
    await buildah('commit', '--quiet', container, 'localhost/aios-registry-catalog:0.1.0');
    const reference = `docker://127.0.0.1:${port}/aios/registry-catalog:0.1.0`;
    await buildah('push', '--tls-verify=false', 'localhost/aios-registry-catalog:0.1.0', reference);

    const pulled = JSON.parse(await skopeo('inspect', '--config', '--tls-verify=false', reference)) as {
      config: {
        Entrypoint: string[];
        Cmd: string[];
        User: string;
        WorkingDir: string;
        ExposedPorts: Record<string, object>;
        Env: string[];
      };
    };
    expect(pulled.config.Entrypoint).to.deep.equal(JSON.parse(value('ENTRYPOINT')[0]!));
    expect(pulled.config.Cmd).to.deep.equal(JSON.parse(value('CMD')[0]!));
    expect(pulled.config.User).to.equal(value('USER')[0]);
    expect(pulled.config.WorkingDir).to.equal(value('WORKDIR')[0]);
    // buildah keeps "5000" as written where docker writes "5000/tcp": compare the port numbers.
    expect(Object.keys(pulled.config.ExposedPorts).map((port) => port.split('/')[0])).to.have.members(
      value('EXPOSE').flatMap((line) => line.split(/\s+/)),
    );
    expect(pulled.config.Env).to.include('NODE_ENV=production');

    const tags = JSON.parse(
      await skopeo('list-tags', '--tls-verify=false', `docker://127.0.0.1:${port}/aios/registry-catalog`),
    ) as {
      Tags: string[];
    };
    expect(tags.Tags).to.deep.equal(['0.1.0']);
    // Pulling it whole works too: skopeo verifies every blob's digest as it copies.
    await skopeo('copy', '--src-tls-verify=false', reference, `oci:${path.join(work, 'oci')}:pulled`);
    const index = JSON.parse(readFileSync(path.join(work, 'oci', 'index.json'), 'utf8')) as {
      manifests: Array<{ annotations?: Record<string, string> }>;
    };
    expect(index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name'])).to.deep.equal([
      'pulled',
    ]);
  });
});
