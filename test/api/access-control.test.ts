import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import request, { type Response } from 'supertest';
import { AccessPolicy } from '../../src/catalog/access/policy.js';
import { createToken, parseTokenEntries, type Role } from '../../src/catalog/access/tokens.js';
import { AddressPolicy } from '../../src/catalog/health/address-policy.js';
import { createProber } from '../../src/catalog/health/probe.js';
import { loopbackCrawler, startCatalog, type TestCatalog } from '../helpers/catalog.js';

/** A prober whose address policy refuses every target: health checks answer without a packet sent. */
const refuseAll = createProber({
  policy: new AddressPolicy({ allow: [], deny: ['0.0.0.0/0', '::/0'] }),
  defaultTimeoutMs: 1000,
});

function registryBody() {
  return {
    container_registry_name: `reg-${randomUUID().slice(0, 8)}`,
    container_registry_public_url: 'http://127.0.0.1:9',
    container_registry_tags: ['access'],
  };
}

/** Every route, the role it needs, and what a permitted call answers. */
interface RouteCase {
  readonly name: string;
  readonly needs: Role | 'public';
  readonly expected: number;
  call(catalog: TestCatalog, headers: Record<string, string>, id: string): Promise<Response>;
}

const ROUTES: RouteCase[] = [
  {
    name: 'POST /container_registry',
    needs: 'write',
    expected: 201,
    call: (c, headers) => c.api.post('/container_registry', registryBody(), { headers }),
  },
  {
    name: 'GET /container_registry/<id>',
    needs: 'read',
    expected: 200,
    call: (c, headers, id) => c.api.get(`/container_registry/${id}`, { headers }),
  },
  {
    name: 'PUT /container_registry/<id>',
    needs: 'write',
    expected: 200,
    call: (c, headers, id) =>
      c.api.put(`/container_registry/${id}`, { $set: { 'container_registry_metadata.k': 1 } }, { headers }),
  },
  {
    name: 'DELETE /container_registry/<id>',
    needs: 'write',
    expected: 200,
    call: (c, headers, id) => c.api.delete(`/container_registry/${id}`, { headers }),
  },
  {
    name: 'POST /container_registries (query)',
    needs: 'read',
    expected: 200,
    call: (c, headers) =>
      c.api.post('/container_registries', { container_registry_tags: { $in: ['access'] } }, { headers }),
  },
  {
    name: 'GET /check_container_health/<id>',
    needs: 'read',
    expected: 200,
    call: (c, headers, id) => c.api.get(`/check_container_health/${id}`, { headers }),
  },
  {
    name: 'GET /container_registry/<id>/health',
    needs: 'read',
    expected: 200,
    call: async (c, headers, id) => {
      // A health record exists once a check ran.
      await c.api.get(`/check_container_health/${id}`, {
        headers: { Authorization: `Bearer ${admin.token}` },
      });
      return c.api.get(`/container_registry/${id}/health`, { headers });
    },
  },
  {
    name: 'GET /container_registries/health',
    needs: 'read',
    expected: 200,
    call: (c, headers) => c.api.get('/container_registries/health', { headers }),
  },
  {
    name: 'POST /container_images (query)',
    needs: 'read',
    expected: 200,
    call: (c, headers) => c.api.post('/container_images', { repository: 'team/app' }, { headers }),
  },
  {
    name: 'GET /resolve_image (nobody holds it: 404 once allowed)',
    needs: 'read',
    expected: 404,
    call: (c, headers) => c.api.get('/resolve_image?reference=team/app:1.0', { headers }),
  },
  {
    name: 'GET /container_registry/<id>/images',
    needs: 'read',
    expected: 200,
    call: (c, headers, id) => c.api.get(`/container_registry/${id}/images`, { headers }),
  },
  {
    name: 'POST /container_registry/<id>/crawl',
    needs: 'write',
    expected: 200,
    call: (c, headers, id) => c.api.post(`/container_registry/${id}/crawl`, undefined, { headers }),
  },
  {
    name: 'GET /container_registry/<id>/crawl (never crawled: 404 once allowed)',
    needs: 'read',
    expected: 404,
    call: (c, headers, id) => c.api.get(`/container_registry/${id}/crawl`, { headers }),
  },
  {
    name: 'GET /openapi.json',
    needs: 'read',
    expected: 200,
    call: (c, headers) => c.api.get('/openapi.json', { headers }),
  },
  {
    name: 'GET /metrics',
    needs: 'admin',
    expected: 200,
    call: (c, headers) => c.api.get('/metrics', { headers }),
  },
  {
    name: 'GET /healthz',
    needs: 'public',
    expected: 200,
    call: (c, headers) => c.api.get('/healthz', { headers }),
  },
  {
    name: 'GET /readyz',
    needs: 'public',
    expected: 200,
    call: (c, headers) => c.api.get('/readyz', { headers }),
  },
];

const reader = createToken('reader', 'read');
const writer = createToken('writer', 'write');
const admin = createToken('admin', 'admin');
const expired = createToken('expired', 'admin', new Date(Date.now() - 60_000));
const revoked = createToken('revoked', 'admin');
const ALL_ENTRIES = [reader, writer, admin, expired, revoked].map(({ entry }) => entry).join('\n');

/** What a client presents, and the role it really has (undefined: anonymous or rejected). */
const CREDENTIALS: ReadonlyArray<{
  name: string;
  headers: Record<string, string>;
  role?: Role;
  invalid?: boolean;
}> = [
  { name: 'no token', headers: {} },
  { name: 'a non-Bearer Authorization', headers: { Authorization: 'Basic dXNlcjpwYXNz' }, invalid: true },
  { name: 'an unknown token', headers: { Authorization: `Bearer aios_${'x'.repeat(43)}` }, invalid: true },
  { name: 'an expired token', headers: { Authorization: `Bearer ${expired.token}` }, invalid: true },
  { name: 'a revoked token', headers: { Authorization: `Bearer ${revoked.token}` }, invalid: true },
  { name: 'a read token', headers: { Authorization: `Bearer ${reader.token}` }, role: 'read' },
  { name: 'a write token', headers: { Authorization: `Bearer ${writer.token}` }, role: 'write' },
  { name: 'an admin token', headers: { Authorization: `Bearer ${admin.token}` }, role: 'admin' },
];

const RANK: Record<Role, number> = { read: 1, register: 1.5, write: 2, admin: 3 };

for (const anonymousRead of [false, true]) {
  describe(`access control matrix (anonymous reads ${anonymousRead ? 'allowed' : 'refused'})`, function () {
    let catalog: TestCatalog;
    const adminHeaders = { Authorization: `Bearer ${admin.token}` };

    before(async function () {
      const policy = new AccessPolicy(parseTokenEntries(ALL_ENTRIES), anonymousRead);
      // "revoked": it worked until the token list was replaced without it (a file reload does this).
      policy.replaceTokens(
        parseTokenEntries([reader, writer, admin, expired].map((t) => t.entry).join('\n')),
      );
      catalog = await startCatalog('embedded', {
        probe: refuseAll,
        // The registry is 127.0.0.1:9 (nothing listens): a crawl is refused at once, partial.
        crawl: loopbackCrawler({ requestTimeoutMs: 1000 }),
        access: { policy, rateLimitPerSecond: 0, healthCheckRateLimitPerMinute: 0, corsOrigins: [] },
      });
    });
    after(() => catalog.stop());

    for (const route of ROUTES) {
      for (const credential of CREDENTIALS) {
        const allowed =
          route.needs === 'public' ||
          (credential.role !== undefined && RANK[credential.role] >= RANK[route.needs]) ||
          (anonymousRead && route.needs === 'read' && credential.name === 'no token');
        const refusal = credential.invalid || credential.role === undefined ? 401 : 403;
        const outcome = allowed ? route.expected : refusal;

        it(`${route.name} with ${credential.name}: ${outcome}`, async () => {
          const created = await catalog.api.post('/container_registry', registryBody(), {
            headers: adminHeaders,
          });
          expect(created.status).to.equal(201);
          const id = created.body.data.id as string;
          const before = await catalog.api.get(`/container_registry/${id}`, { headers: adminHeaders });
          const count = await catalog.api.post('/container_registries', {}, { headers: adminHeaders });

          const res = await route.call(catalog, credential.headers, id);
          expect(res.status, res.text).to.equal(outcome);
          if (allowed) return;
          expect(res.body).to.include({ success: false, status: outcome });
          expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
          if (outcome === 401) {
            expect(res.headers['www-authenticate']).to.match(/^Bearer realm="aios-registry-catalog"/);
            if (credential.invalid)
              expect(res.headers['www-authenticate']).to.include('error="invalid_token"');
          }
          // A refused request changes nothing, and never echoes the token.
          expect(res.text).not.to.include(
            (credential.headers.Authorization ?? 'none').split(' ')[1] ?? 'none',
          );
          const after = await catalog.api.get(`/container_registry/${id}`, { headers: adminHeaders });
          expect(after.status).to.equal(200);
          expect(after.headers.etag).to.equal(before.headers.etag);
          const countAfter = await catalog.api.post('/container_registries', {}, { headers: adminHeaders });
          expect(countAfter.headers['x-total-count']).to.equal(count.headers['x-total-count']);
        });
      }
    }
  });
}

describe('access control: messages and limits', function () {
  it('says why: expired and role messages name the problem, not the token', async () => {
    const policy = new AccessPolicy(parseTokenEntries([reader.entry, expired.entry].join('\n')), false);
    const catalog = await startCatalog('embedded', {
      access: { policy, rateLimitPerSecond: 0, healthCheckRateLimitPerMinute: 0, corsOrigins: [] },
    });
    try {
      const old = await catalog.api.get('/openapi.json', {
        headers: { Authorization: `Bearer ${expired.token}` },
      });
      expect(old.body.error).to.equal('The bearer token has expired');
      const write = await catalog.api.post('/container_registry', registryBody(), {
        headers: { Authorization: `Bearer ${reader.token}` },
      });
      expect(write.status).to.equal(403);
      expect(write.body.error).to.equal('The token "reader" has the read role; this request needs write');
    } finally {
      await catalog.stop();
    }
  });

  it('limits each client per second (429 with Retry-After), and health checks harder', async () => {
    const policy = new AccessPolicy(parseTokenEntries([reader.entry, writer.entry].join('\n')), false);
    const catalog = await startCatalog('embedded', {
      probe: refuseAll,
      access: { policy, rateLimitPerSecond: 20, healthCheckRateLimitPerMinute: 3, corsOrigins: [] },
    });
    try {
      const as = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });
      const created = await catalog.api.post('/container_registry', registryBody(), as(writer.token));
      const id = created.body.data.id as string;
      const checks = [];
      for (let i = 0; i < 4; i++)
        checks.push((await catalog.api.get(`/check_container_health/${id}`, as(reader.token))).status);
      expect(checks).to.deep.equal([200, 200, 200, 429]);
      // The reader may still read (its per-second budget is separate), another client is unaffected.
      expect((await catalog.api.get(`/container_registry/${id}`, as(reader.token))).status).to.equal(200);
      expect((await catalog.api.get(`/check_container_health/${id}`, as(writer.token))).status).to.equal(200);

      const burst = await Promise.all(
        Array.from({ length: 40 }, () => catalog.api.get(`/container_registry/${id}`, as(writer.token))),
      );
      const limited = burst.filter((res) => res.status === 429);
      expect(limited.length).to.be.greaterThan(0);
      expect(burst.filter((res) => res.status === 200).length).to.be.at.most(20);
      expect(Number(limited[0]!.headers['retry-after'])).to.be.within(1, 1);
      expect(limited[0]!.body).to.include({ success: false, status: 429 });
    } finally {
      await catalog.stop();
    }
  });

  it('sends helmet security headers on every response, the fast read path and refusals included', async () => {
    const policy = new AccessPolicy(parseTokenEntries(writer.entry), false);
    const catalog = await startCatalog('embedded', {
      access: { policy, rateLimitPerSecond: 0, healthCheckRateLimitPerMinute: 0, corsOrigins: [] },
    });
    try {
      const headers = { Authorization: `Bearer ${writer.token}` };
      const created = await catalog.api.post('/container_registry', registryBody(), { headers });
      const fast = await catalog.api.get(`/container_registry/${created.body.data.id}`, { headers });
      const missing = await catalog.api.get(`/container_registry/${randomUUID()}`, { headers });
      const refused = await catalog.api.get('/openapi.json');
      for (const res of [created, fast, missing, refused]) {
        expect(res.headers['x-content-type-options']).to.equal('nosniff');
        expect(res.headers['content-security-policy']).to.include("default-src 'self'");
        expect(res.headers['x-frame-options']).to.equal('SAMEORIGIN');
      }
      expect(refused.status).to.equal(401);
    } finally {
      await catalog.stop();
    }
  });
});

describe('CORS', function () {
  const open = {
    policy: new AccessPolicy([], false),
    rateLimitPerSecond: 0,
    healthCheckRateLimitPerMinute: 0,
  };

  it('is off by default: no Access-Control-Allow-Origin, and preflights are not answered', async () => {
    const catalog = await startCatalog('embedded', { access: { ...open, corsOrigins: [] } });
    try {
      const created = await catalog.api.post('/container_registry', registryBody());
      const read = await request(catalog.api.handler)
        .get(`/container_registry/${created.body.data.id}`)
        .set('Origin', 'https://ui.example');
      expect(read.status).to.equal(200);
      expect(read.headers).not.to.have.property('access-control-allow-origin');
      const preflight = await request(catalog.api.handler)
        .options('/container_registry')
        .set('Origin', 'https://ui.example')
        .set('Access-Control-Request-Method', 'POST');
      expect(preflight.headers).not.to.have.property('access-control-allow-origin');
    } finally {
      await catalog.stop();
    }
  });

  it('allows the configured origins only, preflight included (no token needed for it)', async () => {
    const policy = new AccessPolicy(parseTokenEntries(writer.entry), false);
    const catalog = await startCatalog('embedded', {
      access: { ...open, policy, corsOrigins: ['https://ui.example'] },
    });
    try {
      const preflight = await request(catalog.api.handler)
        .options('/container_registry')
        .set('Origin', 'https://ui.example')
        .set('Access-Control-Request-Method', 'POST')
        .set('Access-Control-Request-Headers', 'authorization,content-type');
      expect(preflight.status).to.equal(204);
      expect(preflight.headers['access-control-allow-origin']).to.equal('https://ui.example');
      expect(preflight.headers['access-control-allow-headers']).to.match(/Authorization/);
      const headers = { Authorization: `Bearer ${writer.token}` };
      const created = await catalog.api.post('/container_registry', registryBody(), { headers });
      const read = await request(catalog.api.handler)
        .get(`/container_registry/${created.body.data.id}`)
        .set(headers)
        .set('Origin', 'https://ui.example');
      expect(read.status).to.equal(200);
      expect(read.headers['access-control-allow-origin']).to.equal('https://ui.example');
      expect(read.headers['access-control-expose-headers']).to.include('ETag');
      // A refusal is readable by the page too (same CORS headers), so it can ask for a token.
      const refused = await request(catalog.api.handler)
        .get(`/container_registry/${created.body.data.id}`)
        .set('Origin', 'https://ui.example');
      expect(refused.status).to.equal(401);
      expect(refused.headers['access-control-allow-origin']).to.equal('https://ui.example');
      expect(refused.headers['access-control-expose-headers']).to.include('WWW-Authenticate');
      const other = await request(catalog.api.handler)
        .get(`/container_registry/${created.body.data.id}`)
        .set(headers)
        .set('Origin', 'https://evil.example');
      expect(other.headers).not.to.have.property('access-control-allow-origin');
    } finally {
      await catalog.stop();
    }
  });
});
