import { expect } from 'chai';
import type { Express } from 'express';
import { AddressPolicy } from '../../src/catalog/health/address-policy.js';
import { createProber } from '../../src/catalog/health/probe.js';
import { loopbackCrawler, startCatalog, type TestCatalog } from '../helpers/catalog.js';
import { OpenApiValidator } from '../helpers/openapi-validator.js';

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/** Every `METHOD /path` the Express app routes, in OpenAPI path syntax (405 fallbacks excluded). */
function routedOperations(app: Express): string[] {
  const found: string[] = [];
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        const path = layer.route.path.replace(/:(\w+)/g, '{$1}');
        for (const method of Object.keys(layer.route.methods))
          if (method !== '_all') found.push(`${method.toUpperCase()} ${path}`);
      } else if (layer.handle?.stack) {
        walk(layer.handle.stack);
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return [...new Set(found)].sort();
}

describe('openapi.yaml and the routes', () => {
  let catalog: TestCatalog;
  before(async () => {
    const probe = createProber({
      policy: new AddressPolicy({ allow: [], deny: [] }),
      defaultTimeoutMs: 1000,
    });
    catalog = await startCatalog('embedded', { probe, crawl: loopbackCrawler() });
  });
  after(async () => {
    await catalog.stop();
  });

  it('describe the same operations', () => {
    const documented: string[] = [];
    for (const [path, item] of Object.entries(
      new OpenApiValidator().doc.paths as Record<string, Record<string, unknown>>,
    )) {
      for (const method of ['get', 'put', 'post', 'delete', 'patch', 'head'])
        if (item[method]) documented.push(`${method.toUpperCase()} ${path}`);
    }
    expect(routedOperations(catalog.catalog.app)).to.deep.equal(documented.sort());
  });
});
