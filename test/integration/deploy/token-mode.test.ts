/**
 * The token-mode variant of the registry manifests (deploy/container-registry-token): rendered
 * here as kustomize would (the base's resources, the overlay's, and the strategic-merge patch with
 * Kubernetes' merge keys), decoded strictly by the deploy checker, and run with the rendered
 * configuration (ConfigMap and Secret written where the pod would mount them).
 */
import { generateKeyPairSync } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { expect } from 'chai';
import { parseAllDocuments, stringify } from 'yaml';
import { parseAuthConfig } from '../../../src/oci/auth/auth-config.js';
import { REGISTRY_ENV_VARS } from '../../../src/oci/config.js';
import { buildGoTool, ROOT } from '../../helpers/go-tools.js';
import { freePort } from '../../helpers/ports.js';
import { spawnCli } from '../../helpers/spawn-cli.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects are read as plain YAML. */
type K8sObject = Record<string, any>;

const OVERLAY = path.join(ROOT, 'deploy', 'container-registry-token');

const readObjects = (file: string): K8sObject[] =>
  parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => doc.toJSON() as K8sObject);

/** Merge keys of the lists the patch touches (as in k8s.io/api's patchMergeKey tags). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  env: 'name',
  volumeMounts: 'mountPath',
  volumes: 'name',
};

/** A strategic merge patch: maps merge, keyed lists merge by key, anything else is replaced. */
function strategicMerge(base: any, patch: any, field = ''): any {
  if (Array.isArray(base) && Array.isArray(patch) && MERGE_KEYS[field] !== undefined) {
    const key = MERGE_KEYS[field];
    const merged = [...base];
    for (const item of patch) {
      const index = merged.findIndex((existing) => existing[key] === item[key]);
      if (index < 0) merged.push(item);
      else merged[index] = strategicMerge(merged[index], item);
    }
    return merged;
  }
  if (
    typeof base === 'object' &&
    base !== null &&
    !Array.isArray(base) &&
    typeof patch === 'object' &&
    patch !== null
  ) {
    const merged: K8sObject = { ...base };
    for (const [name, value] of Object.entries(patch)) merged[name] = strategicMerge(base[name], value, name);
    return merged;
  }
  return patch;
}

/** Renders a kustomization: resources (files, or directories holding a kustomization), then patches. */
function kustomize(dir: string): K8sObject[] {
  const kustomization = readObjects(path.join(dir, 'kustomization.yaml'))[0]!;
  const objects = (kustomization.resources as string[]).flatMap((resource) =>
    resource.endsWith('.yaml') ? readObjects(path.join(dir, resource)) : kustomize(path.join(dir, resource)),
  );
  for (const { path: file } of (kustomization.patches ?? []) as { path: string }[]) {
    for (const patch of readObjects(path.join(dir, file))) {
      const index = objects.findIndex(
        (object) => object.kind === patch.kind && object.metadata.name === patch.metadata.name,
      );
      if (index < 0) throw new Error(`patch ${file} matches no ${patch.kind} ${patch.metadata.name}`);
      objects[index] = strategicMerge(objects[index], patch);
    }
  }
  return objects;
}

describe('deploy: token-mode registry manifests', function () {
  this.timeout(120_000);
  let checker: string;
  let rendered: string;
  let objects: K8sObject[];
  const find = (kind: string, name: string) => {
    const found = objects.find((object) => object.kind === kind && object.metadata?.name === name);
    if (!found) throw new Error(`no ${kind} ${name} in the rendered overlay`);
    return found;
  };

  before(() => {
    checker = buildGoTool('deploy-check');
    objects = kustomize(OVERLAY);
    rendered = objects.map((object) => stringify(object)).join('---\n');
  });

  it('renders as kustomize does, and every object (and the example Secret) decodes strictly', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'deploy-token-'));
    try {
      writeFileSync(path.join(dir, 'rendered.yaml'), rendered);
      const result = spawnSync(
        checker,
        ['manifests', path.join(dir, 'rendered.yaml'), path.join(OVERLAY, 'secret.example.yaml')],
        { encoding: 'utf8' },
      );
      expect(result.stderr).to.equal('');
      expect(result.status).to.equal(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(objects.map((object) => `${object.kind}/${object.metadata.name}`).sort()).to.deep.equal([
      'ConfigMap/registry-auth',
      'Deployment/registry',
      'Namespace/registry',
      'PersistentVolume/registry-pv',
      'PersistentVolumeClaim/registry-pvc',
      'Service/registry',
    ]);
  });

  it('mounts the auth config from the ConfigMap and the key and htpasswd it names from the Secret', () => {
    const pod = find('Deployment', 'registry').spec.template.spec;
    const container = pod.containers[0];
    const env = Object.fromEntries(container.env.map((entry: K8sObject) => [entry.name, entry.value]));
    for (const variable of Object.keys(env)) expect(REGISTRY_ENV_VARS).to.include(variable);
    const mountOf = (file: string) => {
      const mount = container.volumeMounts.find((m: K8sObject) => file.startsWith(`${m.mountPath}/`));
      expect(mount, `a volume is mounted at ${file}`).to.not.equal(undefined);
      expect(mount.readOnly).to.equal(true);
      return {
        volume: pod.volumes.find((v: K8sObject) => v.name === mount.name),
        key: path.relative(mount.mountPath, file),
      };
    };
    const configMount = mountOf(env.REGISTRY_AUTH_CONFIG);
    const configMap = find('ConfigMap', configMount.volume.configMap.name);
    const config = parseAuthConfig(
      parseAllDocuments(configMap.data[configMount.key])[0]!.toJSON(),
      'ConfigMap',
    );
    const secret = parseAllDocuments(
      readFileSync(path.join(OVERLAY, 'secret.example.yaml'), 'utf8'),
    )[0]!.toJSON();
    for (const file of [config.signingKeyFile!, config.htpasswd!]) {
      const { volume, key } = mountOf(file);
      expect(volume.secret.secretName).to.equal(secret.metadata.name);
      expect(Object.keys(secret.stringData)).to.include(key);
    }
    for (const probe of [container.readinessProbe, container.livenessProbe])
      expect(probe.httpGet.path).to.equal('/auth/jwks.json');
  });

  it('runs with the rendered configuration: probes answer 200, /v2/ challenges for a token', async () => {
    const pod = find('Deployment', 'registry').spec.template.spec;
    const container = pod.containers[0];
    const env: Record<string, string> = Object.fromEntries(
      container.env.map((entry: K8sObject) => [entry.name, String(entry.value)]),
    );
    const dir = mkdtempSync(path.join(tmpdir(), 'deploy-token-run-'));
    // Every mount becomes a directory under `dir`, filled as the kubelet would.
    const local = (file: string) => path.join(dir, file);
    const configMap = find('ConfigMap', 'registry-auth');
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
      format: 'pem',
      type: 'pkcs8',
    });
    const files: Record<string, string> = {
      '/etc/registry/auth/auth.yaml': String(configMap.data['auth.yaml']).replaceAll(
        '/etc/registry/',
        `${dir}/etc/registry/`,
      ),
      '/etc/registry/secrets/token-key.pem': String(key),
      '/etc/registry/secrets/htpasswd': `root:${bcrypt.hashSync('pw', 4)}\n`,
    };
    for (const [file, content] of Object.entries(files)) {
      mkdirSync(path.dirname(local(file)), { recursive: true });
      writeFileSync(local(file), content);
    }
    const port = await freePort();
    const server = spawnCli(['registry'], {
      ...env,
      REGISTRY_HOST: '127.0.0.1',
      REGISTRY_PORT: String(port),
      REGISTRY_STORAGE_ROOT: local('storage'),
      REGISTRY_AUTH_CONFIG: local(env.REGISTRY_AUTH_CONFIG!),
      LOG_LEVEL: 'info',
    });
    try {
      await server.waitForLog((line) => line.msg === 'registry listening');
      for (const probe of [container.readinessProbe, container.livenessProbe]) {
        const response = await fetch(`http://127.0.0.1:${port}${probe.httpGet.path}`);
        expect(response.status, server.stderr()).to.equal(200);
      }
      const challenge = await fetch(`http://127.0.0.1:${port}/v2/`);
      expect(challenge.status).to.equal(401);
      expect(challenge.headers.get('www-authenticate')).to.match(
        /^Bearer realm=.*service="registry.example:32633"/,
      );
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
