import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import request from 'supertest';
import { startCatalog, type TestCatalog } from '../helpers/catalog.js';

const entry = JSON.parse(readFileSync(new URL('../fixtures/entry.json', import.meta.url), 'utf8')) as Record<
  string,
  unknown
>;
const ID = String(entry.container_registry_id);

/** The header names exactly as they came over the wire. */
function rawHeaderNames(res: request.Response): string[] {
  const raw = (res as unknown as { res: { rawHeaders: string[] } }).res.rawHeaders;
  return raw.filter((_, index) => index % 2 === 0);
}

describe('catalog HTTP details', () => {
  let catalog: TestCatalog;
  before(async () => {
    catalog = await startCatalog('embedded');
    expect((await catalog.api.post('/container_registry', entry)).status).to.equal(201);
  });
  after(async () => {
    await catalog.stop();
  });

  it('counts a malformed JSON body under the route it was sent to, not as unmatched', async () => {
    for (const [method, path] of [
      ['POST', '/container_registry'],
      ['PUT', `/container_registry/${ID}`],
      ['POST', '/container_registries'],
    ] as const) {
      const res = await catalog.api.call(method, path, undefined, {
        raw: '{"a":',
        contentType: 'application/json',
      });
      expect(res.status).to.equal(400);
    }
    const metrics = (await catalog.api.get('/metrics')).text;
    const line = (method: string, route: string) =>
      `catalog_http_requests_total{method="${method}",route="${route}",status="400"} 1`;
    expect(metrics).to.include(line('POST', '/container_registry'));
    expect(metrics).to.include(line('PUT', '/container_registry/:registry_id'));
    expect(metrics).to.include(line('POST', '/container_registries'));
    expect(metrics).to.not.match(/route="unmatched",status="400"/);
  });

  it('writes the request id header in one case on the fast read path and in Express', async () => {
    const fast = await request(catalog.catalog.handler).get(`/container_registry/${ID}`);
    const express = await request(catalog.catalog.handler).get('/healthz');
    const missing = await request(catalog.catalog.handler).get('/container_registry/not-an-id');
    for (const res of [fast, express, missing]) {
      const names = rawHeaderNames(res).filter((name) => name.toLowerCase() === 'x-request-id');
      expect(names).to.deep.equal(['x-request-id']);
    }
  });
});
