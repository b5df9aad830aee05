import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { createToken } from '../../../src/catalog/access/tokens.js';
import { CATALOG_ENV_VARS, loadCatalogConfig } from '../../../src/catalog/config.js';
import { ConfigError } from '../../../src/shared/config/env.js';
import { HEALTH_ENV_VARS } from '../../../src/catalog/health/config.js';
import { MONITOR_ENV_VARS } from '../../../src/catalog/jobs/config.js';
import { REGISTRY_ENV_VARS } from '../../../src/oci/config.js';
import { buildGoTool, ROOT } from '../../helpers/go-tools.js';
import { spawnCli } from '../../helpers/spawn-cli.js';
import { freePort } from '../../helpers/ports.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects are read as plain YAML. */
type K8sObject = Record<string, any>;

const DEPLOY = path.join(ROOT, 'deploy');
const DIRS = ['container-registry', 'registry-db'];
const manifestFiles = DIRS.flatMap((dir) =>
  readdirSync(path.join(DEPLOY, dir))
    .filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml')
    .map((file) => path.join(DEPLOY, dir, file)),
);
const objects: K8sObject[] = manifestFiles.flatMap((file) =>
  parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => doc.toJSON() as K8sObject),
);
const find = (kind: string, name: string) => {
  const found = objects.find((object) => object.kind === kind && object.metadata?.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in deploy/`);
  return found;
};

/** Variables each subcommand of our CLI accepts. */
const ACCEPTED: Record<string, readonly string[]> = {
  serve: [...CATALOG_ENV_VARS, ...HEALTH_ENV_VARS, ...MONITOR_ENV_VARS],
  registry: REGISTRY_ENV_VARS,
};
const PORT_VARIABLE: Record<string, string> = { serve: 'PORT', registry: 'REGISTRY_PORT' };

/** The container's environment as Kubernetes would give it (ConfigMaps through envFrom included). */
function environment(container: K8sObject): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? [])
    Object.assign(env, find('ConfigMap', source.configMapRef.name).data);
  for (const entry of container.env ?? [])
    env[entry.name] = entry.value ?? `<from ${Object.keys(entry.valueFrom ?? {})[0]}>`;
  return env;
}

const ourWorkloads = objects
  .filter((object) => object.kind === 'Deployment')
  .map((deployment) => ({ deployment, container: deployment.spec.template.spec.containers[0] as K8sObject }))
  .filter(({ container }) => String(container.image).startsWith('aios-registry-catalog:'));

describe('deploy: manifests and Dockerfile', function () {
  this.timeout(120_000);
  let checker: string;
  before(() => {
    checker = buildGoTool('deploy-check');
  });

  it('every manifest decodes strictly against the Kubernetes API types', () => {
    const result = spawnSync(checker, ['manifests', ...manifestFiles], { encoding: 'utf8' });
    expect(result.stderr).to.equal('');
    expect(result.status).to.equal(0);
    expect(result.stdout.trim().split('\n')).to.have.length(objects.length);
  });

  it('the checker refuses unknown fields and wrong types', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'deploy-check-'));
    try {
      writeFileSync(
        path.join(dir, 'unknown.yaml'),
        'apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  nodeport: 32633\n',
      );
      writeFileSync(
        path.join(dir, 'type.yaml'),
        'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: two\n',
      );
      const unknown = spawnSync(checker, ['manifests', path.join(dir, 'unknown.yaml')], { encoding: 'utf8' });
      expect(unknown.status).to.equal(1);
      expect(unknown.stderr).to.include('unknown field "spec.nodeport"');
      const type = spawnSync(checker, ['manifests', path.join(dir, 'type.yaml')], { encoding: 'utf8' });
      expect(type.status).to.equal(1);
      expect(type.stderr).to.include('replicas');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('each kustomization lists every manifest of its directory (the example Secret and the optional NodePort excepted)', () => {
    for (const dir of DIRS) {
      const kustomization = parseAllDocuments(
        readFileSync(path.join(DEPLOY, dir, 'kustomization.yaml'), 'utf8'),
      )[0]!.toJSON() as K8sObject;
      const expected = readdirSync(path.join(DEPLOY, dir)).filter(
        (file) =>
          file.endsWith('.yaml') &&
          !['kustomization.yaml', 'secret.example.yaml', 'service-nodeport.yaml'].includes(file),
      );
      expect([...kustomization.resources].sort(), dir).to.deep.equal(expected.sort());
    }
  });

  it('the Dockerfile passes BuildKit lint rules and our image policy; a bad one does not', () => {
    const good = spawnSync(checker, ['dockerfile', path.join(ROOT, 'Dockerfile')], { encoding: 'utf8' });
    expect(good.stderr).to.equal('');
    expect(good.status).to.equal(0);
    const dir = mkdtempSync(path.join(tmpdir(), 'dockerfile-'));
    try {
      writeFileSync(
        path.join(dir, 'Dockerfile'),
        'from node\nADD https://example.com/x.tgz /x\nCMD node x\n',
      );
      const bad = spawnSync(checker, ['dockerfile', path.join(dir, 'Dockerfile')], { encoding: 'utf8' });
      expect(bad.status).to.equal(1);
      expect(bad.stderr)
        .to.include('not pinned')
        .and.include('ADD of a URL')
        .and.include('non-root USER')
        .and.include('ENTRYPOINT');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the registry Service exposes NodePort 32633 to container port 5000, with storage on the PVC', () => {
    const service = find('Service', 'registry');
    const deployment = find('Deployment', 'registry');
    const container = deployment.spec.template.spec.containers[0];
    expect(service.spec.type).to.equal('NodePort');
    const [port] = service.spec.ports;
    expect(port.nodePort).to.equal(32633);
    const target = container.ports.find(
      (p: K8sObject) => p.name === port.targetPort || p.containerPort === port.targetPort,
    );
    expect(target?.containerPort).to.equal(5000);
    expect(service.spec.selector).to.deep.equal(deployment.spec.template.metadata.labels);
    const env = environment(container);
    const mount = container.volumeMounts.find((m: K8sObject) => m.mountPath === env.REGISTRY_STORAGE_ROOT);
    expect(mount, 'a volume is mounted at REGISTRY_STORAGE_ROOT').to.not.equal(undefined);
    const volume = deployment.spec.template.spec.volumes.find((v: K8sObject) => v.name === mount.name);
    expect(volume.persistentVolumeClaim.claimName).to.equal(
      find('PersistentVolumeClaim', 'registry-pvc').metadata.name,
    );
    expect(find('PersistentVolumeClaim', 'registry-pvc').spec.storageClassName).to.equal(
      find('PersistentVolume', 'registry-pv').spec.storageClassName,
    );
  });

  it('the registry storage is handed to the user the registry runs as, before it starts', () => {
    const pod = find('Deployment', 'registry').spec.template.spec;
    const storageRoot = environment(pod.containers[0]).REGISTRY_STORAGE_ROOT;
    const init = (pod.initContainers as K8sObject[]).find((c) => c.command?.[0] === 'chown');
    expect(init, 'an init container chowns the hostPath storage').to.not.equal(undefined);
    expect(init!.command).to.deep.equal([
      'chown',
      `${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`,
      storageRoot,
    ]);
    expect(init!.volumeMounts.map((m: K8sObject) => m.mountPath)).to.deep.equal([storageRoot]);
    expect(init!.securityContext.capabilities).to.deep.equal({ drop: ['ALL'], add: ['CHOWN'] });
  });

  it('MongoDB: the catalog URI names the StatefulSet pod, the replica set and the port it initiates', () => {
    const statefulSet = find('StatefulSet', 'mongodb');
    const service = find('Service', statefulSet.spec.serviceName);
    const mongod = statefulSet.spec.template.spec.containers[0];
    const replicaSet = mongod.args[mongod.args.indexOf('--replSet') + 1] as string;
    const port = mongod.ports[0].containerPort as number;
    const host = `${statefulSet.metadata.name}-0.${service.metadata.name}.${statefulSet.metadata.namespace}.svc.cluster.local:${port}`;
    expect(service.spec.clusterIP).to.equal('None');
    expect(service.spec.publishNotReadyAddresses, 'the pod resolves itself before it is ready').to.equal(
      true,
    );
    expect(mongod.lifecycle.postStart.exec.command.join(' '))
      .to.include(`_id: "${replicaSet}"`)
      .and.include(`host: "${host}"`);
    const uri = new URL(find('Secret', 'registry-db').stringData.MONGODB_URI as string);
    expect(uri.host).to.equal(host);
    expect(uri.searchParams.get('replicaSet')).to.equal(replicaSet);
  });

  it('the catalog listens beyond loopback with the API tokens its Secret mounts, and would refuse without them', () => {
    const deployment = find('Deployment', 'registry-db');
    const container = deployment.spec.template.spec.containers[0];
    const env = environment(container);
    const secretVolume = deployment.spec.template.spec.volumes.find((v: K8sObject) => v.secret);
    const mount = container.volumeMounts.find((m: K8sObject) => m.name === secretVolume.name);
    const mounted = secretVolume.secret.items.map((item: K8sObject) => path.join(mount.mountPath, item.path));
    expect(mounted).to.include.members([env.API_TOKENS_FILE, env.CREDENTIALS_KEYS_FILE]);
    const secretKeys = Object.keys(find('Secret', 'registry-db').stringData);
    expect(secretKeys).to.include.members(secretVolume.secret.items.map((item: K8sObject) => item.key));

    const dir = mkdtempSync(path.join(tmpdir(), 'deploy-tokens-'));
    try {
      const tokens = path.join(dir, 'api-tokens');
      writeFileSync(tokens, `${createToken('ops', 'admin').entry}\n`);
      const local = { ...env, API_TOKENS_FILE: tokens, CREDENTIALS_KEYS_FILE: '' };
      expect(loadCatalogConfig(local).host).to.equal('0.0.0.0');
      expect(() => loadCatalogConfig({ ...local, API_TOKENS_FILE: '' })).to.throw(
        ConfigError,
        /not a loopback address/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the Dockerfile runs our built CLI as the user the pods run as, exposing their ports', () => {
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    const instruction = (name: string) =>
      [...finalStage.matchAll(new RegExp(`^${name} (.+)$`, 'gm'))].map((match) => match[1]!.trim());
    const packageJson = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    const tsconfig = JSON.parse(readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8')) as {
      compilerOptions: { rootDir: string; outDir: string };
    };
    const cli = `${tsconfig.compilerOptions.outDir}/cli.js`;
    expect(existsSync(path.join(ROOT, tsconfig.compilerOptions.rootDir, 'cli.ts'))).to.equal(true);
    expect(Object.values(packageJson.bin)).to.include(cli);
    expect(JSON.parse(instruction('ENTRYPOINT')[0]!)).to.deep.equal(['node', cli]);
    expect(Object.keys(ACCEPTED)).to.include((JSON.parse(instruction('CMD')[0]!) as string[])[0]);
    const exposed = instruction('EXPOSE').flatMap((line) => line.split(/\s+/));
    for (const { deployment, container } of ourWorkloads) {
      const pod = deployment.spec.template.spec;
      expect(instruction('USER'), deployment.metadata.name).to.deep.equal([
        `${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`,
      ]);
      for (const port of container.ports) expect(exposed).to.include(String(port.containerPort));
    }
  });

  for (const { deployment, container } of ourWorkloads) {
    const name = deployment.metadata.name as string;
    const command = (container.args as string[])[0]!;

    it(`${name}: runs a subcommand of our CLI with variables it accepts, on the port it listens on`, async () => {
      expect(Object.keys(ACCEPTED)).to.include(command);
      const help = spawnCli([command, '--help'], {});
      expect((await help.exited).code, `${command} --help`).to.equal(0);
      const env = environment(container);
      for (const variable of Object.keys(env))
        expect(ACCEPTED[command], `${name} sets ${variable}`).to.include(variable);
      expect(container.ports.map((p: K8sObject) => String(p.containerPort))).to.include(
        env[PORT_VARIABLE[command]!],
      );
      if (command === 'serve' && deployment.spec.replicas > 1) {
        expect(env, 'replicas must share MongoDB, not each keep an embedded store').to.have.property(
          'MONGODB_URI',
        );
      }
      const shutdownMs = Number(env.SHUTDOWN_TIMEOUT_MS ?? env.REGISTRY_SHUTDOWN_TIMEOUT_MS ?? 10_000);
      expect(
        deployment.spec.template.spec.terminationGracePeriodSeconds * 1000,
        'grace period covers the drain',
      ).to.be.greaterThan(shutdownMs);
    });

    it(`${name}: its probe paths answer 200 when the server runs with the manifest's configuration`, async () => {
      const env = environment(container);
      const port = await freePort();
      const dir = mkdtempSync(path.join(tmpdir(), 'deploy-probe-'));
      // Same configuration, made runnable here: loopback, a free port, temp storage, no MongoDB or Secret.
      const local: Record<string, string> = { ...env, LOG_LEVEL: 'warn' };
      delete local.MONGODB_URI;
      delete local.CREDENTIALS_KEYS_FILE;
      delete local.API_TOKENS_FILE;
      if (command === 'serve')
        Object.assign(local, {
          HOST: '127.0.0.1',
          PORT: String(port),
          DATA_DIR: dir,
          HEALTH_MONITOR_ENABLED: 'false',
        });
      else
        Object.assign(local, {
          REGISTRY_HOST: '127.0.0.1',
          REGISTRY_PORT: String(port),
          REGISTRY_STORAGE_ROOT: dir,
        });
      const server = spawnCli([command], local);
      try {
        const probes = [container.readinessProbe, container.livenessProbe].map(
          (probe: K8sObject) => probe.httpGet.path as string,
        );
        for (const probePath of probes) {
          let status = 0;
          for (let attempt = 0; attempt < 100 && status === 0; attempt++) {
            status = await fetch(`http://127.0.0.1:${port}${probePath}`).then(
              (res) => res.status,
              () => new Promise<number>((resolve) => setTimeout(() => resolve(0), 100)),
            );
          }
          expect(status, `${probePath}: ${server.stderr()}`).to.equal(200);
        }
      } finally {
        server.child.kill('SIGTERM');
        await server.exited;
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
