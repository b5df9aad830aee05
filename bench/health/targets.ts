/**
 * Loopback "registries" for the health bench, in their own process: `healthy` servers answer
 * /v2/ at once, `hanging` servers accept and never answer. Prints {"healthy": [urls], "hanging": [urls]}.
 *   node --import tsx bench/health/targets.ts <healthyServers> <hangingServers>
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const [healthyCount = '8', hangingCount = '4'] = process.argv.slice(2);

async function start(handler: http.RequestListener): Promise<string> {
  const server = http.createServer({ keepAliveTimeout: 1000 }, handler);
  server.maxConnections = 10_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', 1024, resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const healthy = await Promise.all(
  Array.from({ length: Number(healthyCount) }, () =>
    start((_req, res) => {
      res.writeHead(200, {
        'docker-distribution-api-version': 'registry/2.0',
        'content-type': 'application/json',
      });
      res.end('{}');
    }),
  ),
);
const hanging = await Promise.all(Array.from({ length: Number(hangingCount) }, () => start(() => undefined)));
console.log(JSON.stringify({ healthy, hanging }));
