import { expect } from 'chai';
import dns from 'node:dns';
import type http from 'node:http';
import { AddressPolicy } from '../../../src/catalog/health/address-policy.js';
import { createProber } from '../../../src/catalog/health/probe.js';
import type { HealthReport } from '../../../src/catalog/model.js';
import {
  fakeResolver,
  REGISTRY_HEADERS,
  registryHandler,
  selfSignedCertificate,
  serve,
  targetPerTest,
  type Target,
} from '../../helpers/probe-targets.js';

const loopback = new AddressPolicy({ allow: ['127.0.0.0/8'], deny: [] });
const probe = createProber({ policy: loopback, defaultTimeoutMs: 2000 });
const credentials = { username: 'robot', password: 'pa55-word' };

function basicOk(req: http.IncomingMessage): boolean {
  return req.headers.authorization === `Basic ${Buffer.from('robot:pa55-word').toString('base64')}`;
}

describe('health probe against real loopback servers', function () {
  this.timeout(20_000);
  const targets: Target[] = [];
  const start = async (...args: Parameters<typeof serve>) => {
    const target = await serve(...args);
    targets.push(target);
    return target;
  };
  afterEach(async () => {
    await Promise.all(targets.splice(0).map((target) => target.close()));
  });

  it('reports a registry answering 200 with the API version header as healthy', async () => {
    const target = await start(registryHandler);
    const report = await probe({ url: target.url });
    expect(report).to.include({
      reachable: true,
      status_code: 200,
      status: 'healthy',
      oci_compatible: true,
      api_version: 'registry/2.0',
      // The original service's meanings: the public URL and the HTTP reason phrase.
      url: target.url,
      reason: 'OK',
      probe_url: `${target.url}/v2/`,
      detail: 'the registry answered /v2/ with 200',
      error: null,
    });
    expect(report.latency_ms).to.be.a('number');
    expect(Date.parse(report.checked_at)).to.be.closeTo(Date.now(), 5000);
    expect(target.requests[0]?.url).to.equal('/v2/');
  });

  it('keeps a path prefix of the public URL', async () => {
    const target = await start(registryHandler);
    const report = await probe({ url: `${target.url}/mirror/` });
    expect(target.requests[0]?.url).to.equal('/mirror/v2/');
    expect(report).to.include({ url: `${target.url}/mirror/`, probe_url: `${target.url}/mirror/v2/` });
  });

  it('reports a plain web page (200 without the header) as not OCI compatible', async () => {
    const target = await start((_req, res) => res.end('<html>hello</html>'));
    const report = await probe({ url: target.url });
    expect(report).to.include({
      reachable: true,
      status_code: 200,
      status: 'unhealthy',
      oci_compatible: false,
    });
    expect(report.detail).to.match(/not an OCI registry/);
  });

  for (const status of [404, 500]) {
    it(`reports HTTP ${status} as unhealthy`, async () => {
      const target = await start((_req, res) => {
        res.writeHead(status, REGISTRY_HEADERS);
        res.end('{}');
      });
      expect(await probe({ url: target.url })).to.include({
        reachable: true,
        status_code: status,
        reason: status === 404 ? 'Not Found' : 'Internal Server Error',
        url: target.url,
        status: 'unhealthy',
      });
    });
  }

  it("reports the server's own reason phrase in reason, as the original's response.reason", async () => {
    const target = await start((_req, res) => {
      res.writeHead(503, 'Down For Maintenance', REGISTRY_HEADERS);
      res.end('{}');
    });
    expect(await probe({ url: target.url })).to.include({
      status_code: 503,
      reason: 'Down For Maintenance',
      detail: '/v2/ answered HTTP 503',
    });
  });

  it('reports a 401 Basic challenge as healthy, and whether stored credentials are accepted', async () => {
    const target = await start((req, res) => {
      res.writeHead(basicOk(req) ? 200 : 401, {
        ...REGISTRY_HEADERS,
        'www-authenticate': 'Basic realm="Registry"',
      });
      res.end('{}');
    });
    const anonymous = await probe({ url: target.url });
    expect(anonymous).to.include({ status: 'healthy', status_code: 401, reason: 'Unauthorized' });
    expect(anonymous.auth).to.deep.equal({ scheme: 'Basic', realm: 'Registry' });
    expect(anonymous).to.not.have.property('credentials_accepted');
    const good = await probe({ url: target.url, credentials });
    expect(good.credentials_accepted).to.equal(true);
    const bad = await probe({ url: target.url, credentials: { username: 'robot', password: 'wrong' } });
    expect(bad.credentials_accepted).to.equal(false);
    expect(JSON.stringify([good, bad]))
      .to.not.include('pa55-word')
      .and.not.include('wrong');
  });

  it('follows the Bearer token flow against the challenge realm', async () => {
    const tokens = await start((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.searchParams.get('service') !== 'test-registry' || !basicOk(req)) {
        res.writeHead(401, { 'content-type': 'application/json' });
        return res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: 'issued-token' }));
    });
    const registry = await start((req, res) => {
      const ok = req.headers.authorization === 'Bearer issued-token';
      res.writeHead(ok ? 200 : 401, {
        ...REGISTRY_HEADERS,
        'www-authenticate': `Bearer realm="${tokens.url}/token",service="test-registry"`,
      });
      res.end('{}');
    });
    const good = await probe({ url: registry.url, credentials });
    expect(good).to.include({ status: 'healthy', credentials_accepted: true });
    expect(good.auth).to.deep.equal({
      scheme: 'Bearer',
      realm: `${tokens.url}/token`,
      service: 'test-registry',
    });
    const bad = await probe({ url: registry.url, credentials: { username: 'robot', password: 'nope' } });
    expect(bad.credentials_accepted).to.equal(false);
    expect(JSON.stringify(good)).to.not.include('issued-token').and.not.include('pa55-word');
  });

  it('reports a hanging server as unreachable after the timeout', async () => {
    const target = await start(() => undefined);
    const started = Date.now();
    const report = await probe({ url: target.url, timeoutMs: 300 });
    expect(Date.now() - started).to.be.lessThan(1500);
    expect(report).to.include({
      reachable: false,
      status: 'unreachable',
      error: 'timeout',
      status_code: null,
      reason: null,
      url: target.url,
    });
  });

  it('reports a closed port as unreachable', async () => {
    const target = await start(registryHandler);
    await target.close();
    expect(await probe({ url: target.url })).to.include({
      reachable: false,
      status: 'unreachable',
      error: 'ECONNREFUSED',
    });
  });

  it('verifies TLS: a self-signed certificate is refused unless skipped or given as the CA bundle', async () => {
    const tls = selfSignedCertificate();
    const target = await start(registryHandler, { tls });
    const strict = await probe({ url: target.url });
    expect(strict).to.include({ status: 'unreachable', reachable: false });
    expect(strict.detail).to.match(/TLS/);
    expect(await probe({ url: target.url, insecureSkipTlsVerify: true })).to.include({ status: 'healthy' });
    expect(await probe({ url: target.url, caBundle: tls.cert })).to.include({ status: 'healthy' });
  });

  it('follows a redirect on the same host', async () => {
    const target = await start((req, res) => {
      if (req.url === '/v2/') {
        res.writeHead(307, { location: '/real/v2/' });
        return res.end();
      }
      registryHandler(req, res);
    });
    expect(await probe({ url: target.url })).to.include({ status: 'healthy', status_code: 200 });
  });

  it('does not follow a redirect to another host, nor send it anything', async () => {
    const elsewhere = await start(registryHandler, { host: '127.0.0.2' });
    const target = await start((_req, res) => {
      res.writeHead(302, { location: `${elsewhere.url}/v2/` });
      res.end();
    });
    const report = await probe({ url: target.url, credentials });
    expect(report).to.include({ status: 'unhealthy', status_code: 302 });
    expect(report.detail).to.match(/another host/);
    expect(elsewhere.connections()).to.equal(0);
  });

  for (const location of ['http://169.254.169.254/v2/', 'http://[::ffff:169.254.169.254]/v2/']) {
    it(`never follows a redirect to the metadata address ${location}`, async () => {
      const target = await start((_req, res) => {
        res.writeHead(302, { location });
        res.end();
      });
      const report = await probe({ url: target.url });
      expect(report).to.include({ status: 'unhealthy', status_code: 302 });
      expect(report.detail).to.match(/another host/);
    });
  }
});

describe('health probe SSRF guard (no packet leaves loopback)', () => {
  const defaults = new AddressPolicy({ allow: [], deny: [] });

  const target = targetPerTest(registryHandler);

  it('refuses loopback by default: the real server sees no connection', async () => {
    const report = await createProber({ policy: defaults, defaultTimeoutMs: 1000 })({ url: target().url });
    expect(report).to.include({ status: 'refused', reachable: false });
    expect(report.detail).to.match(/loopback/);
    expect(target().connections()).to.equal(0);
  });

  it('refuses a name that resolves to a refused address, before connecting', async () => {
    const port = new URL(target().url).port;
    const { lookup, asked } = fakeResolver({
      'registry.test': ['127.0.0.1'],
      'metadata.test': ['169.254.169.254'],
    });
    const prober = createProber({ policy: defaults, lookup, defaultTimeoutMs: 1000 });
    const viaName = await prober({ url: `http://registry.test:${port}` });
    expect(viaName.status).to.equal('refused');
    expect(target().connections()).to.equal(0);
    const metadata = await prober({ url: 'http://metadata.test/latest/meta-data' });
    expect(metadata).to.include({ status: 'refused', reachable: false });
    expect(metadata.detail).to.match(/link-local/);
    expect(asked).to.deep.equal(['registry.test', 'metadata.test']);
  });

  it('refuses IP literals of refused classes, including IPv4-mapped IPv6, without any lookup', async () => {
    const { lookup, asked } = fakeResolver({});
    const prober = createProber({ policy: defaults, lookup, defaultTimeoutMs: 1000 });
    const reports: HealthReport[] = [];
    for (const url of [
      'http://169.254.169.254/',
      'http://[::ffff:169.254.169.254]/',
      'http://[fd00:ec2::254]/',
      'http://0.0.0.0:80/',
      'http://[::1]:9/',
    ]) {
      reports.push(await prober({ url }));
    }
    expect(reports.map((report) => report.status)).to.deep.equal(Array(5).fill('refused'));
    expect(asked).to.deep.equal([]);
  });

  it('catches DNS rebinding: a same-host redirect whose name now resolves to a refused address', async () => {
    let answers = 0;
    const lookup = ((
      hostname: string,
      _options: unknown,
      callback: (error: Error | null, addresses: dns.LookupAddress[]) => void,
    ) => {
      answers++;
      callback(null, [{ address: answers === 1 ? '127.0.0.1' : '169.254.169.254', family: 4 }]);
    }) as unknown as typeof dns.lookup;
    const redirecting = await serve((_req, res) => {
      res.writeHead(302, { location: '/elsewhere/v2/' });
      res.end();
    });
    try {
      const prober = createProber({
        policy: new AddressPolicy({ allow: ['127.0.0.0/8'], deny: [] }),
        lookup,
        defaultTimeoutMs: 1000,
      });
      const report = await prober({ url: `http://rebind.test:${new URL(redirecting.url).port}` });
      expect(report.status).to.equal('refused');
      expect(redirecting.connections()).to.equal(1);
    } finally {
      await redirecting.close();
    }
  });
});
