/**
 * The S3 overlay (deploy/container-registry-s3), checked offline: rendered with kustomize
 * (`kubectl kustomize`, no cluster), decoded strictly against the Kubernetes API types, and the
 * registry started with exactly the environment and Secret files the pods would get, against a
 * real S3 server on loopback.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { REGISTRY_ENV_VARS } from '../../../src/oci/config.js';
import { ROOT } from '../../helpers/go-tools.js';
import { checkStrictly, readObjects, renderOverlay, type K8sObject } from '../../helpers/kustomize.js';
import { pushImage } from '../../helpers/registry.js';
import { tempDir } from '../../helpers/temp-dirs.js';
import { pullAndVerify, startReplica } from '../../helpers/s3-replicas.js';
import { startS3Server } from '../../helpers/s3-server.js';

const OVERLAY = path.join(ROOT, 'deploy', 'container-registry-s3');

describe('deploy: S3 overlay with 3 replicas', function () {
  this.timeout(120_000);
  let objects: K8sObject[];
  let overlay: ReturnType<typeof renderOverlay>;
  const find = (kind: string) => objects.filter((object) => object.kind === kind);

  before(() => {
    overlay = renderOverlay(OVERLAY);
    objects = overlay.objects;
  });

  it('renders objects that decode strictly against the Kubernetes API types', async () => {
    const listing = await checkStrictly(overlay, [path.join(OVERLAY, 'secret.example.yaml')]);
    expect(listing).to.include('PodDisruptionBudget registry').and.include('Secret registry-s3');
  });

  it('runs 3 replicas without a volume claim, kept at 2 by a PodDisruptionBudget', () => {
    expect(find('PersistentVolumeClaim')).to.deep.equal([]);
    expect(find('PersistentVolume')).to.deep.equal([]);
    const [deployment] = find('Deployment');
    const pod = deployment!.spec.template.spec;
    expect(deployment!.spec.replicas).to.equal(3);
    expect(deployment!.spec.strategy.type).to.equal('RollingUpdate');
    expect(pod.volumes.filter((volume: K8sObject) => volume.persistentVolumeClaim)).to.deep.equal([]);
    expect(pod.initContainers ?? []).to.deep.equal([]);
    const [pdb] = find('PodDisruptionBudget');
    expect(pdb!.spec.selector.matchLabels).to.deep.equal(deployment!.spec.template.metadata.labels);
    expect(pdb!.spec.minAvailable).to.be.within(1, deployment!.spec.replicas - 1);
    const [service] = find('Service');
    expect(service!.spec.selector).to.deep.equal(deployment!.spec.template.metadata.labels);
  });

  it('the pods start a registry that serves from the bucket with the mounted Secret', async () => {
    const [deployment] = find('Deployment');
    const pod = deployment!.spec.template.spec;
    const container = pod.containers[0];
    const env: Record<string, string> = Object.fromEntries(
      container.env.map((entry: K8sObject) => [entry.name, entry.value]),
    );
    for (const variable of Object.keys(env)) expect(REGISTRY_ENV_VARS, variable).to.include(variable);
    expect(env.REGISTRY_STORAGE_ROOT).to.equal(undefined);
    expect(env.REGISTRY_STORAGE_URL).to.match(/^s3:\/\//);

    // Materialize the Secret volume as the kubelet would, from the example Secret.
    const secret = (await readObjects(path.join(OVERLAY, 'secret.example.yaml')))[0]!;
    const volume = pod.volumes.find((entry: K8sObject) => entry.secret?.secretName === secret.metadata.name);
    expect(volume, 'the pods mount the example Secret').to.not.equal(undefined);
    const mount = container.volumeMounts.find((entry: K8sObject) => entry.name === volume.name);
    const dir = await tempDir('s3-overlay-secret-');
    const s3 = await startS3Server();
    try {
      const local: Record<string, string> = { ...env };
      for (const item of volume.secret.items as K8sObject[]) {
        const inPod = path.posix.join(mount.mountPath, item.path);
        const file = path.join(dir, item.path);
        await fs.writeFile(file, secret.stringData[item.key]);
        for (const [name, value] of Object.entries(local)) if (value === inPod) local[name] = file;
      }
      expect(local.AWS_ACCESS_KEY_ID_FILE).to.not.equal(env.AWS_ACCESS_KEY_ID_FILE);
      expect(local.AWS_SECRET_ACCESS_KEY_FILE).to.not.equal(env.AWS_SECRET_ACCESS_KEY_FILE);
      // Only the endpoint differs from the pods: the test's S3 server instead of AWS.
      const bucket = (await s3.bucket()).bucket;
      const replica = await startReplica({
        ...local,
        REGISTRY_HOST: '127.0.0.1',
        REGISTRY_PORT: '0',
        REGISTRY_STORAGE_URL: env.REGISTRY_STORAGE_URL!.replace(/^s3:\/\/[^/]+/, `s3://${bucket}`),
        REGISTRY_S3_ENDPOINT: s3.endpoint,
      });
      try {
        const pushed = await pushImage(replica.base, 'deploy/check', '1.0', [randomBytes(10_000)]);
        expect(await pullAndVerify(replica.base, 'deploy/check', '1.0')).to.equal(pushed.digest);
      } finally {
        await replica.stop();
      }
    } finally {
      await s3.stop();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
