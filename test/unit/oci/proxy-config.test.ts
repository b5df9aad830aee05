import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { expect } from 'chai';
import { ConfigError } from '../../../src/shared/config/env.js';
import { loadOciConfig } from '../../../src/oci/config.js';
import { PROXY_DEFAULTS, parseProxySpecs, resolveUpstreams } from '../../../src/oci/proxy/config.js';
import { CircuitBreaker } from '../../../src/oci/proxy/circuit-breaker.js';

describe('registry: pull-through cache configuration', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'proxy-config-'));
  });
  after(() => fs.rm(dir, { recursive: true, force: true }));

  const file = async (name: string, text: string) => {
    const target = path.join(dir, name);
    await fs.writeFile(target, text);
    return target;
  };

  it('maps prefixes from REGISTRY_PROXY with the defaults of DESIGN (7 days TTL, 2000 ms timeout)', () => {
    const config = loadOciConfig({
      REGISTRY_PROXY: 'mirror=https://registry-1.docker.io/, ghcr/=https://ghcr.io',
    });
    expect(config.upstreams.map((u) => [u.prefix, u.url, u.host])).to.deep.equal([
      ['mirror/', 'https://registry-1.docker.io', 'registry-1.docker.io'],
      ['ghcr/', 'https://ghcr.io', 'ghcr.io'],
    ]);
    expect(config.upstreams[0]).to.include({ ttlSeconds: 604800, upstreamTimeoutMs: 2000 });
  });

  it('refuses malformed entries, overlapping prefixes and URLs with credentials', () => {
    expect(() => parseProxySpecs('REGISTRY_PROXY', ['mirror'])).to.throw(ConfigError, 'PREFIX=URL');
    expect(() => parseProxySpecs('REGISTRY_PROXY', ['Mirror/=https://x'])).to.throw(ConfigError, 'prefix');
    expect(() => parseProxySpecs('REGISTRY_PROXY', ['m/=ftp://x'])).to.throw(ConfigError, 'http');
    expect(() => parseProxySpecs('REGISTRY_PROXY', ['m/=https://u:p@x'])).to.throw(
      ConfigError,
      'credentials',
    );
    const specs = parseProxySpecs('REGISTRY_PROXY', ['a/=https://x', 'a/b/=https://y']);
    expect(() => resolveUpstreams(specs, undefined, PROXY_DEFAULTS)).to.throw(ConfigError, 'overlap');
  });

  it('reads per-upstream settings from the file, refuses unknown keys, never shows the password', async () => {
    const secret = await file('secret', 'hunter2\n');
    const good = await file(
      'good.yaml',
      [
        'proxies:',
        '  mirror/:',
        '    username: bot',
        `    password_file: ${secret}`,
        '    ttl_seconds: 3600',
        '    max_stale_seconds: 60',
        '    upstream_timeout_ms: 500',
        '  other:',
        '    url: https://quay.io',
        '',
      ].join('\n'),
    );
    const [mirror, other] = resolveUpstreams(
      parseProxySpecs('REGISTRY_PROXY', ['mirror/=https://registry-1.docker.io']),
      good,
      PROXY_DEFAULTS,
    );
    expect(mirror).to.include({ ttlSeconds: 3600, maxStaleSeconds: 60, upstreamTimeoutMs: 500 });
    expect(mirror?.credentials?.reveal()).to.equal('hunter2');
    expect(JSON.stringify(mirror)).not.to.contain('hunter2');
    expect(inspect(mirror)).not.to.contain('hunter2');
    expect(other).to.include({ prefix: 'other/', url: 'https://quay.io' });

    const unknown = await file(
      'unknown.json',
      JSON.stringify({ proxies: { 'm/': { url: 'https://x', ttl: 5 } } }),
    );
    expect(() => resolveUpstreams([], unknown, PROXY_DEFAULTS)).to.throw(ConfigError, /ttl/);
    const noUrl = await file('nourl.yaml', 'proxies:\n  m/:\n    ttl_seconds: 600\n');
    expect(() => resolveUpstreams([], noUrl, PROXY_DEFAULTS)).to.throw(ConfigError, 'no url');
  });

  it('opens the circuit after repeated failures and lets one probe through after the cool-down', () => {
    let now = 0;
    const breaker = new CircuitBreaker(() => now, { threshold: 2, openMs: 1000, maxOpenMs: 4000 });
    breaker.failure();
    expect(breaker.allow()).to.equal(true);
    breaker.failure();
    expect(breaker.allow()).to.equal(false);
    now = 1001;
    expect(breaker.allow()).to.equal(true);
    expect(breaker.allow()).to.equal(false); // only one probe
    breaker.failure();
    now = 2500;
    expect(breaker.allow()).to.equal(false); // reopened for twice as long
    now = 3100;
    expect(breaker.allow()).to.equal(true);
    breaker.success();
    expect(breaker.allow()).to.equal(true);
  });
});
