import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { expect } from 'chai';
import { AccessPolicy } from '../../../src/catalog/access/policy.js';
import { createToken, parseTokenEntries } from '../../../src/catalog/access/tokens.js';
import { AddressPolicy } from '../../../src/catalog/health/address-policy.js';
import { createProber } from '../../../src/catalog/health/probe.js';
import { destinationProblem } from '../../../src/catalog/health/webhook-post.js';
import { generateSecret } from '../../../src/catalog/events/webhook-signature.js';
import type { WebhookDeliveryJob } from '../../../src/catalog/jobs/webhook-delivery.js';
import { startCatalog, type TestCatalog } from '../../helpers/catalog.js';
import { REGISTRY_HEADERS } from '../../helpers/probe-targets.js';
import { deliveryJob, LOOPBACK_POLICY } from '../../helpers/webhook-delivery.js';
import { eventually, startReceiver, type WebhookReceiver } from '../../helpers/webhook-receiver.js';

/** The default policy: loopback is refused, as for a production catalog. */
const STRICT = new AddressPolicy({ allow: [], deny: [] });

function entry(name: string, url = 'http://127.0.0.1:9/') {
  return {
    container_registry_name: name,
    container_registry_public_url: url,
    container_registry_tags: ['team-a'],
  };
}

/** A loopback "registry" answering /v2/ while up; while down it resets every connection (unreachable). */
async function flappingRegistry(): Promise<{ url: string; up: boolean; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const state = { url: '', up: true, close: (): Promise<void> => Promise.resolve() };
  const server = http.createServer((req, res) => {
    if (!state.up) {
      req.socket.destroy();
      return;
    }
    res.writeHead(200, REGISTRY_HEADERS).end('{}');
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return state;
}

describe('webhooks (embedded store, loopback receivers)', function () {
  this.timeout(60_000);
  const secret = generateSecret();
  let catalog: TestCatalog;
  let receiver: WebhookReceiver;
  let job: WebhookDeliveryJob;

  beforeEach(async () => {
    catalog = await startCatalog('embedded', {
      probe: createProber({ policy: LOOPBACK_POLICY, defaultTimeoutMs: 1_000 }),
    });
    receiver = await startReceiver(secret);
    job = deliveryJob(catalog);
    job.start();
  });
  afterEach(async () => {
    await job.stop();
    await receiver.close();
    await catalog.stop();
  });

  async function subscribe(events: string[], url = receiver.url, filter?: unknown): Promise<string> {
    const res = await catalog.api.post('/webhooks', { url, events, secret, ...(filter ? { filter } : {}) });
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return String(res.body.data.webhook_id);
  }

  it('signs CloudEvents of registry changes, in order, and never returns the secret', async () => {
    const webhookId = await subscribe(['registry.*']);
    const read = await catalog.api.get(`/webhooks/${webhookId}`);
    expect(read.status).to.equal(200);
    expect(JSON.stringify(read.body)).not.to.include(secret.slice(6, 20));
    expect(read.body.data).not.to.have.property('secret');
    const created = await catalog.api.post('/container_registry', entry('one'));
    const id = String(created.body.data.id);
    await catalog.api.put(`/container_registry/${id}`, { $set: { container_registry_name: 'two' } });
    await catalog.api.delete(`/container_registry/${id}`);
    await eventually(() => receiver.received.length >= 3, 'three deliveries');
    expect(receiver.received.map((r) => r.event.type)).to.deep.equal([
      'registry.created',
      'registry.updated',
      'registry.deleted',
    ]);
    for (const r of receiver.received) {
      expect(r.signatureValid, 'signature').to.equal(true);
      expect(r.id).to.equal(r.event.id);
      expect(r.event).to.include({ specversion: '1.0', datacontenttype: 'application/json', subject: id });
      expect(r.event.data.container_registry_id).to.equal(id);
    }
    const deliveries = await catalog.api.get(`/webhooks/${webhookId}/deliveries?limit=2`);
    expect(deliveries.status).to.equal(200);
    expect(deliveries.headers['x-total-count']).to.equal('3');
    expect(deliveries.body.data).to.have.length(2);
    expect(deliveries.body.data.every((d: { status: string }) => d.status === 'delivered')).to.equal(true);
    // Redelivery sends the same event again, with the same webhook-id.
    const first = deliveries.body.data[1] as { delivery_id: string; event_id: string };
    const again = await catalog.api.post(`/webhooks/${webhookId}/deliveries/${first.delivery_id}/redeliver`);
    expect(again.status).to.equal(202);
    await eventually(() => receiver.received.length >= 4, 'the redelivery');
    expect(receiver.received[3]!.id).to.equal(first.event_id);
    expect(receiver.received[3]!.signatureValid).to.equal(true);
  });

  it('announces a health change only after two agreeing probes: 10 flapping registries make no storm', async () => {
    await subscribe(['registry.health.changed']);
    const registries = await Promise.all(Array.from({ length: 10 }, () => flappingRegistry()));
    try {
      const ids: string[] = [];
      for (const [i, registry] of registries.entries()) {
        const res = await catalog.api.post('/container_registry', entry(`flap-${i}`, registry.url));
        ids.push(String(res.body.data.id));
      }
      const probeAll = () =>
        Promise.all(
          ids.map((id) => catalog.api.get(`/check_container_health/${id}`).then((r) => r.body.data.status)),
        );
      expect(await probeAll()).to.deep.equal(Array(10).fill('healthy'));
      await probeAll();
      await eventually(() => receiver.received.length >= 10, 'ten first announcements');
      // Flapping: every probe disagrees with the one before it.
      for (let round = 0; round < 8; round++) {
        for (const registry of registries) registry.up = round % 2 === 1;
        await probeAll();
      }
      // Then a real change: unreachable twice in a row (the last flap round left them up).
      for (const registry of registries) registry.up = false;
      await probeAll();
      await probeAll();
      await eventually(() => receiver.received.length >= 20, 'ten changes to unreachable');
      await new Promise((resolve) => setTimeout(resolve, 300));
      const changes = receiver.received.map((r) => `${String(r.event.data.from)}>${String(r.event.data.to)}`);
      expect(changes.filter((c) => c === 'null>healthy')).to.have.length(10);
      expect(changes.filter((c) => c === 'healthy>unreachable')).to.have.length(10);
      expect(changes).to.have.length(20);
      expect(receiver.received.every((r) => r.signatureValid)).to.equal(true);
    } finally {
      await Promise.all(registries.map((registry) => registry.close()));
    }
  });

  it('delivers everything in order once a receiver that was down is back; a hanging receiver stalls only itself', async () => {
    const webhookId = await subscribe(['registry.*']);
    const hanging = await startReceiver(secret);
    hanging.mode = 'hang';
    await subscribe(['registry.*'], hanging.url);
    receiver.mode = 'down';
    const created = await catalog.api.post('/container_registry', entry('down'));
    const id = String(created.body.data.id);
    for (let i = 0; i < 20; i++)
      await catalog.api.put(`/container_registry/${id}`, { $set: { container_registry_metadata: { n: i } } });
    await eventually(() => receiver.refused >= 3, 'retries against the receiver that is down');
    expect(receiver.received).to.have.length(0);
    receiver.mode = 'up';
    await eventually(() => receiver.received.length >= 21, 'all 21 events after the receiver came back');
    const versions = receiver.received.map((r) => r.event.data.version);
    expect(versions).to.deep.equal(Array.from({ length: 21 }, (_, i) => i + 1));
    const ids = receiver.received.map((r) => r.event.id);
    expect([...ids].sort()).to.deep.equal(ids);
    expect(receiver.received.every((r) => r.signatureValid)).to.equal(true);
    const pending = await catalog.api.get(`/webhooks/${webhookId}/deliveries?status=pending`);
    expect(pending.headers['x-total-count']).to.equal('0');
    await hanging.close();
  });

  it('refuses a webhook URL the SSRF policy refuses, at create and at delivery', async () => {
    const strict = await startCatalog('embedded', {
      events: { checkDestination: (url) => destinationProblem(url, STRICT) },
    });
    try {
      const res = await strict.api.post('/webhooks', { url: receiver.url, events: ['*'], secret });
      expect(res.status).to.equal(422);
      expect(res.body.error).to.match(/loopback|refused/i);
      expect((await strict.api.get('/webhooks')).headers['x-total-count']).to.equal('0');
      for (const url of ['ftp://127.0.0.1/', 'http://user:pw@127.0.0.1/', 'not a url'])
        expect((await strict.api.post('/webhooks', { url, events: ['*'], secret })).status).to.be.oneOf([
          400, 422,
        ]);
    } finally {
      await strict.stop();
    }
    // A subscription stored while loopback was allowed is refused when delivered with the strict policy.
    await job.stop();
    const webhookId = await subscribe(['registry.created']);
    const strictJob = deliveryJob(catalog, { owner: 'strict', policy: STRICT });
    strictJob.start();
    try {
      await catalog.api.post('/container_registry', entry('ssrf'));
      await eventually(async () => {
        const res = await catalog.api.get(`/webhooks/${webhookId}/deliveries`);
        return (res.body.data[0]?.attempts ?? 0) >= 2;
      }, 'refused attempts');
      const res = await catalog.api.get(`/webhooks/${webhookId}/deliveries`);
      expect(res.body.data[0].last_attempt.error).to.match(/refused/);
      expect(receiver.received).to.have.length(0);
      expect(receiver.refused).to.equal(0);
    } finally {
      await strictJob.stop();
    }
  });

  it('streams the same events as SSE to curl -N, filtered by type and registry, and resumes after Last-Event-ID', async () => {
    const server = http.createServer(catalog.catalog.handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const curl = (path: string, headers: string[] = []) => {
      const child = spawn('curl', ['-sN', ...headers.flatMap((h) => ['-H', h]), `${base}${path}`]);
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      return { child, out: () => out };
    };
    try {
      const a = String((await catalog.api.post('/container_registry', entry('a'))).body.data.id);
      const b = String((await catalog.api.post('/container_registry', entry('b'))).body.data.id);
      const filtered = curl(`/events?type=registry.updated,registry.deleted&registry=${a}`);
      const all = curl('/events?type=registry.*');
      await eventually(
        () => filtered.out().includes(': connected') && all.out().includes(': connected'),
        'both streams open',
      );
      await catalog.api.put(`/container_registry/${b}`, { $set: { container_registry_name: 'b2' } });
      await catalog.api.put(`/container_registry/${a}`, { $set: { container_registry_name: 'a2' } });
      await catalog.api.delete(`/container_registry/${a}`);
      await eventually(() => (filtered.out().match(/^event: /gm) ?? []).length >= 2, 'two filtered events');
      await eventually(() => (all.out().match(/^event: /gm) ?? []).length >= 3, 'three events');
      await new Promise((resolve) => setTimeout(resolve, 200));
      const types = (text: string) => [...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
      expect(types(filtered.out())).to.deep.equal(['registry.updated', 'registry.deleted']);
      expect(types(all.out())).to.deep.equal(['registry.updated', 'registry.updated', 'registry.deleted']);
      const data = [...filtered.out().matchAll(/^data: (.+)$/gm)].map(
        (m) => JSON.parse(m[1]!) as { data: Record<string, unknown> },
      );
      expect(data.every((event) => event.data.container_registry_id === a)).to.equal(true);
      // Resume: after the first event of the unfiltered stream come the other two.
      const firstId = /^id: (.+)$/m.exec(all.out())![1]!;
      const resumed = curl('/events', [`Last-Event-ID: ${firstId}`]);
      await eventually(() => (resumed.out().match(/^event: /gm) ?? []).length >= 2, 'the resumed events');
      expect(types(resumed.out())).to.deep.equal(['registry.updated', 'registry.deleted']);
      for (const stream of [filtered, all, resumed]) stream.child.kill();
      expect((await catalog.api.get('/events?type=nope')).status).to.equal(400);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('webhooks and events: roles', function () {
  this.timeout(30_000);
  const reader = createToken('reader', 'read');
  const writer = createToken('writer', 'write');
  let catalog: TestCatalog;
  before(async () => {
    catalog = await startCatalog('embedded', {
      access: {
        policy: new AccessPolicy(parseTokenEntries(`${reader.entry}\n${writer.entry}`), false),
        rateLimitPerSecond: 0,
        healthCheckRateLimitPerMinute: 0,
        corsOrigins: [],
      },
    });
  });
  after(() => catalog.stop());

  it('needs write for every webhook route and read for GET /events', async () => {
    const as = (token: { token: string }) => ({ headers: { Authorization: `Bearer ${token.token}` } });
    const body = { url: 'http://127.0.0.1:9/hook', events: ['*'], secret: generateSecret() };
    expect((await catalog.api.post('/webhooks', body)).status).to.equal(401);
    expect((await catalog.api.post('/webhooks', body, as(reader))).status).to.equal(403);
    expect((await catalog.api.get('/webhooks', as(reader))).status).to.equal(403);
    const created = await catalog.api.post('/webhooks', body, as(writer));
    expect(created.status).to.equal(201);
    const id = String(created.body.data.webhook_id);
    expect((await catalog.api.get(`/webhooks/${id}/deliveries`, as(reader))).status).to.equal(403);
    expect((await catalog.api.get(`/webhooks/${id}/deliveries`, as(writer))).status).to.equal(200);
    expect((await catalog.api.delete(`/webhooks/${id}`, as(reader))).status).to.equal(403);
    expect((await catalog.api.delete(`/webhooks/${id}`, as(writer))).status).to.equal(200);
    // The stream: 401 without a token, 200 text/event-stream with a read token (read with fetch, as the dashboard does).
    const server = http.createServer(catalog.catalog.handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      expect((await fetch(`${base}/events`)).status).to.equal(401);
      const abort = new AbortController();
      const res = await fetch(`${base}/events`, {
        headers: { Authorization: `Bearer ${reader.token}` },
        signal: abort.signal,
      });
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^text\/event-stream/);
      const reader_ = res.body!.getReader();
      const first = new TextDecoder().decode((await reader_.read()).value);
      expect(first).to.include(': connected');
      abort.abort();
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
