import { expect } from 'chai';
import { pino } from 'pino';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AddressPolicy } from '../../src/catalog/health/address-policy.js';
import { createProber } from '../../src/catalog/health/probe.js';
import { STORE_KINDS, startCatalog, type TestCatalog } from '../helpers/catalog.js';

/** A loopback registry stand-in that answers /v2/ like a registry and counts connections. */
async function fakeRegistry(
  port = 0,
): Promise<{ url: string; connections: () => number; close(): Promise<void> }> {
  let connections = 0;
  const server = http.createServer((_req, res) => {
    res.writeHead(200, {
      'docker-distribution-api-version': 'registry/2.0',
      'content-type': 'application/json',
    });
    res.end('{}');
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A loopback port with nothing listening. */
async function closedPort(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

const loopbackAllowed = createProber({
  policy: new AddressPolicy({ allow: ['127.0.0.0/8'], deny: [] }),
  defaultTimeoutMs: 2000,
});
const defaultPolicy = createProber({
  policy: new AddressPolicy({ allow: [], deny: [] }),
  defaultTimeoutMs: 2000,
});

for (const kind of STORE_KINDS) {
  describe(`health routes (${kind} store)`, () => {
    let catalog: TestCatalog;
    let target: Awaited<ReturnType<typeof fakeRegistry>>;
    let upId: string;
    let downId: string;

    beforeEach(async () => {
      target = await fakeRegistry();
      catalog = await startCatalog(kind, { probe: loopbackAllowed, historySize: 3 });
      upId = (
        await catalog.api.post('/container_registry', {
          container_registry_name: 'up',
          container_registry_public_url: target.url,
        })
      ).body.data.id;
      downId = (
        await catalog.api.post('/container_registry', {
          container_registry_name: 'down',
          container_registry_public_url: await closedPort(),
        })
      ).body.data.id;
    });
    afterEach(async () => {
      target.close();
      await catalog.stop();
    });

    it('checks a registry now, in the AIOS envelope with the original fields first', async () => {
      const res = await catalog.api.get(`/check_container_health/${upId}`);
      expect(res.status).to.equal(200);
      expect(Object.keys(res.body.data).slice(0, 4)).to.deep.equal([
        'reachable',
        'status_code',
        'reason',
        'url',
      ]);
      expect(res.body.data).to.include({
        reachable: true,
        status_code: 200,
        status: 'healthy',
        oci_compatible: true,
        // The original's meanings: the public URL and the HTTP reason phrase; ours beside them.
        url: target.url,
        reason: 'OK',
        probe_url: `${target.url}/v2/`,
        detail: 'the registry answered /v2/ with 200',
      });
      const down = await catalog.api.get(`/check_container_health/${downId}`);
      expect(down.status).to.equal(200);
      expect(down.body.data).to.include({ reachable: false, status: 'unreachable', reason: null });
    });

    it('answers 404 for an unknown id and 400 for a malformed one', async () => {
      expect(
        (await catalog.api.get('/check_container_health/00000000-0000-4000-8000-000000000000')).status,
      ).to.equal(404);
      expect((await catalog.api.get('/check_container_health/nope')).status).to.equal(400);
      expect(
        (await catalog.api.get(`/check_container_health/${upId}?cached=true`)).status,
        'nothing recorded yet',
      ).to.equal(404);
    });

    it('returns the cached report, a bounded history, the bulk statuses and filters queries by health', async () => {
      const first = await catalog.api.get(`/check_container_health/${upId}`);
      const cached = await catalog.api.get(`/check_container_health/${upId}?cached=true`);
      expect(cached.body.data).to.deep.equal(first.body.data);
      for (let i = 0; i < 3; i++) await catalog.api.get(`/check_container_health/${upId}`);
      await catalog.api.get(`/check_container_health/${downId}`);

      const history = await catalog.api.get(`/container_registry/${upId}/health`);
      expect(history.body.data.history).to.have.length(3);
      expect(history.body.data.last).to.deep.equal(history.body.data.history[0]);
      // `?limit=`: the newest reports only (the dashboard's sparklines); a bad limit is a 400.
      const newest = await catalog.api.get(`/container_registry/${upId}/health?limit=2`);
      expect(newest.body.data.history).to.deep.equal(history.body.data.history.slice(0, 2));
      expect((await catalog.api.get(`/container_registry/${upId}/health?limit=0`)).status).to.equal(400);

      const bulk = await catalog.api.get('/container_registries/health');
      expect(bulk.headers['x-total-count']).to.equal('2');
      expect(
        Object.fromEntries(
          bulk.body.data.map((row: { container_registry_id: string; status: string }) => [
            row.container_registry_id,
            row.status,
          ]),
        ),
      ).to.deep.equal({
        [upId]: 'healthy',
        [downId]: 'unreachable',
      });

      const healthy = await catalog.api.post('/container_registries?health=healthy', {});
      expect(
        healthy.body.data.map((doc: { container_registry_id: string }) => doc.container_registry_id),
      ).to.deep.equal([upId]);
      const notHealthy = await catalog.api.post('/container_registries?health=unreachable,unhealthy', {
        container_registry_name: 'down',
      });
      expect(notHealthy.body.data).to.have.length(1);
      expect((await catalog.api.post('/container_registries?health=great', {})).status).to.equal(400);

      const metrics = await catalog.api.get('/metrics');
      expect(metrics.text).to.include(`catalog_registry_up{registry_id="${upId}"} 1`);
      expect(metrics.text).to.include(`catalog_registry_up{registry_id="${downId}"} 0`);

      await catalog.api.delete(`/container_registry/${upId}`);
      expect((await catalog.api.get('/container_registries/health')).body.data).to.have.length(1);
    });

    it('verifies on create when asked: 201 for a healthy registry, 422 and nothing stored otherwise', async () => {
      const ok = await catalog.api.post('/container_registry?verify=true', {
        container_registry_name: 'v',
        container_registry_public_url: target.url,
      });
      expect(ok.status).to.equal(201);
      const bad = await catalog.api.post('/container_registry?verify=true', {
        container_registry_name: 'w',
        container_registry_public_url: await closedPort(),
      });
      expect(bad.status).to.equal(422);
      expect(bad.body.error).to.match(/unreachable/);
      expect(
        (await catalog.api.post('/container_registries', { container_registry_name: 'w' })).body.data,
      ).to.have.length(0);
    });
  });
}

describe('health state changes', () => {
  it('are logged when a registry goes from healthy to unreachable and back', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    const target = await fakeRegistry();
    const catalog = await startCatalog('embedded', { probe: loopbackAllowed, logger });
    try {
      const id = (
        await catalog.api.post('/container_registry', {
          container_registry_name: 'flappy',
          container_registry_public_url: target.url,
        })
      ).body.data.id;
      await catalog.api.get(`/check_container_health/${id}`);
      target.close();
      await catalog.api.get(`/check_container_health/${id}`);
      const changes = lines.filter((line) => line.msg === 'registry health changed');
      expect(changes.map((line) => [line.registryId, line.from, line.to])).to.deep.equal([
        [id, 'healthy', 'unreachable'],
      ]);
    } finally {
      await catalog.stop();
    }
  });
});

describe('health routes with the default probe policy', () => {
  it('refuse a loopback registry without opening a connection', async () => {
    const target = await fakeRegistry();
    const catalog = await startCatalog('embedded', { probe: defaultPolicy });
    try {
      const id = (
        await catalog.api.post('/container_registry', {
          container_registry_name: 'lo',
          container_registry_public_url: target.url,
        })
      ).body.data.id;
      const res = await catalog.api.get(`/check_container_health/${id}`);
      expect(res.body.data).to.include({ status: 'refused', reachable: false });
      expect(target.connections()).to.equal(0);
    } finally {
      target.close();
      await catalog.stop();
    }
  });
});
