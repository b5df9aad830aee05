import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnCli, type CliProcess } from '../helpers/spawn-cli.js';

/**
 * Connections that never send a byte are closed after the headers timeout, on both servers
 * (raw sockets against the real processes); a connection that sends a request is served.
 */

const TIMEOUT_MS = 1_000;
const SOCKETS = 200;

/** Opens `count` sockets that send nothing; resolves with how many the server closed within `withinMs`. */
async function silentSockets(url: string, count: number, withinMs: number): Promise<number> {
  const { hostname, port } = new URL(url);
  const sockets = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Socket>((resolve, reject) => {
          const socket = net.connect(Number(port), hostname, () => resolve(socket));
          socket.on('error', reject);
        }),
    ),
  );
  let closed = 0;
  for (const socket of sockets) socket.once('close', () => (closed += 1));
  await new Promise((resolve) => setTimeout(resolve, withinMs));
  for (const socket of sockets) socket.destroy();
  return closed;
}

describe('idle connections that never send a byte', function () {
  this.timeout(60_000);
  let dir: string;
  let cli: CliProcess | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'idle-connections-'));
  });
  afterEach(async () => {
    cli?.child.kill('SIGKILL');
    await cli?.exited;
    cli = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  const servers = [
    {
      name: 'the catalog',
      args: ['serve'],
      env: (root: string): Record<string, string> => ({
        PORT: '0',
        DATA_DIR: root,
        HEALTH_MONITOR_ENABLED: 'false',
        HEADERS_TIMEOUT_MS: String(TIMEOUT_MS),
      }),
      listening: 'catalog listening',
      ping: '/healthz',
    },
    {
      name: 'the registry',
      args: ['registry'],
      env: (root: string): Record<string, string> => ({
        REGISTRY_HOST: '127.0.0.1',
        REGISTRY_PORT: '0',
        REGISTRY_STORAGE_ROOT: root,
        REGISTRY_HEADERS_TIMEOUT_MS: String(TIMEOUT_MS),
      }),
      listening: 'registry listening',
      ping: '/v2/',
    },
  ];
  for (const server of servers) {
    it(`${server.name} closes them after the headers timeout and still serves`, async () => {
      cli = spawnCli(server.args, server.env(dir));
      const url = String((await cli.waitForLog((line) => line.msg === server.listening)).url);
      const closed = await silentSockets(url, SOCKETS, TIMEOUT_MS + 2_500);
      expect(closed).to.equal(SOCKETS);
      expect((await fetch(`${url}${server.ping}`)).status).to.equal(200);
    });
  }
});
