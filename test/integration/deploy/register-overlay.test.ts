/**
 * The self-registration overlay (deploy/container-registry-register), checked offline: rendered
 * with `kubectl kustomize`, decoded strictly against the Kubernetes API types, its addresses
 * checked against the catalog's Service and the registry's NodePort, and the registry started
 * with exactly the environment and Secret file the pod would get, against a real catalog on
 * loopback (the cluster's addresses replaced by loopback ones, nothing else).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { createToken } from '../../../src/catalog/access/tokens.js';
import { REGISTRY_ENV_VARS } from '../../../src/oci/config.js';
import { ROOT } from '../../helpers/go-tools.js';
import { checkStrictly, readObjects, renderOverlay, type K8sObject } from '../../helpers/kustomize.js';
import { freePort } from '../../helpers/ports.js';
import { loopbackCatalogEnv } from '../../helpers/probe-targets.js';
import { spawnCli, type CliProcess } from '../../helpers/spawn-cli.js';
import { tempDir } from '../../helpers/temp-dirs.js';

const OVERLAY = path.join(ROOT, 'deploy', 'container-registry-register');

describe('deploy: self-registration overlay', function () {
  this.timeout(120_000);
  let objects: K8sObject[];
  let overlay: ReturnType<typeof renderOverlay>;
  let container: K8sObject;
  let pod: K8sObject;
  const find = (kind: string) => objects.filter((object) => object.kind === kind);

  before(() => {
    overlay = renderOverlay(OVERLAY);
    objects = overlay.objects;
    pod = find('Deployment')[0]!.spec.template.spec;
    container = pod.containers[0];
  });

  it('renders objects (and the example Secret) that decode strictly against the Kubernetes API types', async () => {
    const listing = await checkStrictly(overlay, [path.join(OVERLAY, 'secret.example.yaml')]);
    expect(listing).to.include('Deployment registry').and.include('Secret registry-catalog-token');
  });

  it("registers with the catalog's in-cluster Service, under the node's address and the NodePort", async () => {
    const names = (container.env as K8sObject[]).map((entry) => entry.name as string);
    for (const name of names.filter((name) => name !== 'NODE_IP'))
      expect(REGISTRY_ENV_VARS, name).to.include(name);
    const env = Object.fromEntries((container.env as K8sObject[]).map((entry) => [entry.name, entry]));
    expect(env.NODE_IP.valueFrom).to.deep.equal({ fieldRef: { fieldPath: 'status.hostIP' } });
    // The kubelet expands $(NODE_IP) only from variables defined before it.
    expect(names.indexOf('NODE_IP')).to.be.lessThan(names.indexOf('REGISTRY_PUBLIC_URL'));

    const catalogService = (await readObjects(path.join(ROOT, 'deploy', 'registry-db', 'service.yaml')))[0]!;
    const catalogPort = catalogService.spec.ports[0].port as number;
    const catalogUrl = new URL(env.REGISTRY_REGISTER_WITH.value as string);
    expect(catalogUrl.hostname).to.equal(
      `${catalogService.metadata.name}.${catalogService.metadata.namespace}.svc.cluster.local`,
    );
    expect(Number(catalogUrl.port || 80)).to.equal(catalogPort);

    const [service] = find('Service');
    expect(env.REGISTRY_PUBLIC_URL.value).to.equal(`http://$(NODE_IP):${service!.spec.ports[0].nodePort}`);
  });

  it('the pod starts a registry that lists itself in a real catalog with the mounted token', async () => {
    const work = await tempDir('register-overlay-run-');
    const admin = createToken('ops', 'admin');
    const registrar = createToken('cluster-registry', 'register');
    const children: CliProcess[] = [];
    try {
      // Materialize the Secret volume as the kubelet would (the token file of secret.example.yaml).
      const secret = (await readObjects(path.join(OVERLAY, 'secret.example.yaml')))[0]!;
      const volume = (pod.volumes as K8sObject[]).find(
        (entry) => entry.secret?.secretName === secret.metadata.name,
      );
      expect(volume, 'the pod mounts the token Secret').to.not.equal(undefined);
      const mount = (container.volumeMounts as K8sObject[]).find((entry) => entry.name === volume!.name)!;
      const env: Record<string, string> = Object.fromEntries(
        (container.env as K8sObject[])
          .filter((entry) => entry.value !== undefined)
          .map((entry) => [entry.name, String(entry.value)]),
      );
      const tokenItem = (volume!.secret.items as K8sObject[])[0]!;
      expect(env.REGISTRY_REGISTER_TOKEN_FILE).to.equal(path.posix.join(mount.mountPath, tokenItem.path));
      expect(secret.stringData[tokenItem.key]).to.be.a('string');
      const tokenFile = path.join(work, tokenItem.path);
      await fs.writeFile(tokenFile, registrar.token);

      await fs.writeFile(path.join(work, 'tokens'), [admin.entry, registrar.entry].join('\n'));
      const catalog = spawnCli(
        ['serve'],
        loopbackCatalogEnv({
          PORT: '0',
          DATA_DIR: path.join(work, 'catalog'),
          API_TOKENS_FILE: path.join(work, 'tokens'),
        }),
      );
      children.push(catalog);
      const catalogUrl = String(
        (await catalog.waitForLog((line) => line.msg === 'catalog listening', 60_000)).url,
      );

      // Only the cluster's addresses change: the catalog's Service, the node IP and the NodePort.
      const port = await freePort();
      const registry = spawnCli(['registry'], {
        ...env,
        REGISTRY_HOST: '127.0.0.1',
        REGISTRY_PORT: String(port),
        REGISTRY_STORAGE_ROOT: path.join(work, 'storage'),
        REGISTRY_REGISTER_WITH: catalogUrl,
        REGISTRY_REGISTER_TOKEN_FILE: tokenFile,
        REGISTRY_PUBLIC_URL: env
          .REGISTRY_PUBLIC_URL!.replace('$(NODE_IP)', '127.0.0.1')
          .replace(/:\d+$/, `:${port}`),
      });
      children.push(registry);
      const registered = await registry.waitForLog(
        (line) => line.msg === 'registered with the catalog',
        60_000,
      );
      const response = await fetch(`${catalogUrl}/container_registry/${String(registered.registryId)}`, {
        headers: { authorization: `Bearer ${admin.token}` },
      });
      expect(response.status).to.equal(200);
      const entry = ((await response.json()) as { data: Record<string, unknown> }).data;
      expect(entry).to.include({
        container_registry_name: env.REGISTRY_REGISTER_NAME,
        container_registry_public_url: `http://127.0.0.1:${port}`,
      });
      expect(entry.container_registry_tags).to.deep.equal(env.REGISTRY_REGISTER_TAGS!.split(','));
    } finally {
      for (const child of children) {
        if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGKILL');
        await child.exited;
      }
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
