import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { generateSecret } from '../../../src/catalog/events/webhook-signature.js';
import type { WebhookDeliveryJob } from '../../../src/catalog/jobs/webhook-delivery.js';
import { startCatalog, type TestCatalog } from '../../helpers/catalog.js';
import { loopbackCatalogEnv } from '../../helpers/probe-targets.js';
import { spawnCli, type CliProcess } from '../../helpers/spawn-cli.js';
import { deliveryJob } from '../../helpers/webhook-delivery.js';
import { distinct, eventually, startReceiver } from '../../helpers/webhook-receiver.js';

describe('webhook delivery durability', function () {
  this.timeout(120_000);
  const secret = generateSecret();

  it('loses no event when the catalog is SIGKILLed during delivery (embedded store, at least once)', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'catalog-webhooks-kill-'));
    const receiver = await startReceiver(secret);
    receiver.delayMs = 15; // deliveries are in flight most of the time
    const env = loopbackCatalogEnv({
      HOST: '127.0.0.1',
      PORT: '0',
      DATA_DIR: dataDir,
      RATE_LIMIT_PER_SECOND: '0',
      WEBHOOK_POLL_MS: '50',
      WEBHOOK_TIMEOUT_MS: '1000',
      WEBHOOK_RETRY_INITIAL_MS: '50',
      WEBHOOK_RETRY_MAX_MS: '200',
    });
    const start = async (): Promise<{ cli: CliProcess; url: string }> => {
      const cli = spawnCli(['serve'], env);
      const line = await cli.waitForLog((entry) => entry.msg === 'catalog listening', 60_000);
      return { cli, url: String(line.url) };
    };
    let first: CliProcess | undefined;
    let second: CliProcess | undefined;
    try {
      const started = await start();
      first = started.cli;
      const json = { 'content-type': 'application/json' };
      const hook = await fetch(`${started.url}/webhooks`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ url: receiver.url, events: ['registry.*'], secret }),
      });
      expect(hook.status).to.equal(201);
      const created = await fetch(`${started.url}/container_registry`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({
          container_registry_name: 'kill',
          container_registry_public_url: 'http://127.0.0.1:9',
        }),
      });
      const id = String(((await created.json()) as { data: { id: string } }).data.id);
      const acknowledged = [1];
      // Writers keep updating until the catalog dies; only answered updates are promised.
      const writer = (async () => {
        for (let n = 0; ; n++) {
          try {
            const res = await fetch(`${started.url}/container_registry/${id}`, {
              method: 'PUT',
              headers: json,
              body: JSON.stringify({ $set: { container_registry_metadata: { n } } }),
            });
            if (res.status !== 200) return;
            acknowledged.push(acknowledged.length + 1);
          } catch {
            return;
          }
        }
      })();
      await eventually(() => receiver.received.length >= 10, 'deliveries under way');
      first.child.kill('SIGKILL');
      await first.exited;
      await writer;
      const beforeKill = receiver.received.length;
      expect(acknowledged.length).to.be.greaterThan(beforeKill);
      second = (await start()).cli;
      const versions = () =>
        new Set(distinct(receiver.received).map((r) => Number(r.event.data.version ?? 0)));
      await eventually(
        () => acknowledged.every((version) => versions().has(version)),
        `every acknowledged change delivered (${acknowledged.length})`,
        60_000,
      );
      const delivered = distinct(receiver.received);
      const ids = delivered.map((r) => r.id);
      expect([...ids].sort(), 'in order').to.deep.equal(ids);
    } finally {
      first?.child.kill('SIGKILL');
      second?.child.kill('SIGKILL');
      await receiver.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('two catalog replicas on one FerretDB deliver each event once, in order', async () => {
    const database = `test_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
    const replicas: TestCatalog[] = [];
    const jobs: WebhookDeliveryJob[] = [];
    const receiver = await startReceiver(secret);
    try {
      for (const owner of ['replica-a', 'replica-b']) {
        const catalog = await startCatalog('mongo', { mongoDatabase: database });
        replicas.push(catalog);
        const job = deliveryJob(catalog, {
          owner,
          config: { pollMs: 20, timeoutMs: 2_000, concurrency: 8, retryInitialMs: 50 },
        });
        jobs.push(job);
        job.start();
      }
      const [a, b] = replicas as [TestCatalog, TestCatalog];
      const hook = await a.api.post('/webhooks', { url: receiver.url, events: ['registry.updated'], secret });
      expect(hook.status).to.equal(201);
      const created = await a.api.post('/container_registry', {
        container_registry_name: 'replicas',
        container_registry_public_url: 'http://127.0.0.1:9',
      });
      const id = String(created.body.data.id);
      const updates = 40;
      for (let n = 0; n < updates; n++) {
        const res = await (n % 2 === 0 ? a : b).api.put(`/container_registry/${id}`, {
          $set: { container_registry_metadata: { n } },
        });
        expect(res.status).to.equal(200);
      }
      await eventually(() => receiver.received.length >= updates, `${updates} deliveries`, 60_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const ids = receiver.received.map((r) => r.id);
      expect(new Set(ids).size, 'each event once').to.equal(ids.length);
      expect(ids).to.have.length(updates);
      expect(receiver.received.every((r) => r.signatureValid)).to.equal(true);
      expect(receiver.received.map((r) => r.event.data.version)).to.deep.equal(
        Array.from({ length: updates }, (_, i) => i + 2),
      );
    } finally {
      await Promise.all(jobs.map((job) => job.stop()));
      await receiver.close();
      for (const catalog of replicas) await catalog.stop().catch(() => undefined);
    }
  });
});
