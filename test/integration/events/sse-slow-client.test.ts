import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { spawnCli, type CliProcess } from '../../helpers/spawn-cli.js';
import { eventually } from '../../helpers/webhook-receiver.js';

/**
 * `GET /events` with a client that stops reading: a raw TCP client sends the request and never
 * reads a byte, while large events (about 64 KiB each: the registry document rides in every
 * event) are published. Once the kernel's socket buffers are full, the server's per-client buffer
 * (`EVENTS_CLIENT_BUFFER`) fills and the client is dropped; a second client that reads gets every
 * event meanwhile and PUTs keep answering (the server's RSS is logged).
 */

const EVENTS = 400;
const CLIENT_BUFFER = 20;
const METADATA_BYTES = 64 * 1024;

/** Resident memory of a process (Linux /proc). */
function rssBytes(pid: number): number {
  const line = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(line![1]) * 1024;
}

describe('GET /events with a client that never reads', function () {
  this.timeout(120_000);
  let cli: CliProcess | undefined;
  let dataDir: string;

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'catalog-sse-slow-'));
  });
  afterEach(async () => {
    cli?.child.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('drops it once its buffer is full, while another client gets every event and PUTs keep answering', async () => {
    cli = spawnCli(['serve'], {
      HOST: '127.0.0.1',
      PORT: '0',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
      HEALTH_MONITOR_ENABLED: 'false',
      CRAWL_ENABLED: 'false',
      RATE_LIMIT_PER_SECOND: '0',
      WEBHOOK_DELIVERY_ENABLED: 'false',
      EVENTS_CLIENT_BUFFER: String(CLIENT_BUFFER),
      EVENTS_POLL_MS: '50',
    });
    const url = String((await cli.waitForLog((entry) => entry.msg === 'catalog listening', 60_000)).url);
    const { port } = new URL(url);
    const json = { 'content-type': 'application/json' };
    const created = await fetch(`${url}/container_registry`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({
        container_registry_name: 'big',
        container_registry_public_url: 'http://127.0.0.1:9',
      }),
    });
    const id = String(((await created.json()) as { data: { id: string } }).data.id);

    // The stuck client: a request, then never a read.
    const stuck = net.connect(Number(port), '127.0.0.1');
    stuck.pause();
    let stuckClosed = false;
    stuck.on('close', () => (stuckClosed = true));
    stuck.on('error', () => undefined);
    stuck.write(`GET /events?type=registry.updated HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);

    // The reading client counts the events it gets.
    const reader = new AbortController();
    const readerResponse = await fetch(`${url}/events?type=registry.updated`, { signal: reader.signal });
    let readerEvents = 0;
    const reading = (async () => {
      const decoder = new TextDecoder();
      let text = '';
      for await (const chunk of readerResponse.body!) {
        text += decoder.decode(chunk as Uint8Array, { stream: true });
        const parts = text.split('\n\n');
        text = parts.pop()!;
        readerEvents += parts.filter((part) => part.includes('event: registry.updated')).length;
      }
    })().catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 300)); // both streams joined

    const pid = cli.child.pid!;
    const rssBefore = rssBytes(pid);
    let rssPeak = rssBefore;
    const putMs: number[] = [];
    for (let n = 0; n < EVENTS; n++) {
      const started = performance.now();
      const res = await fetch(`${url}/container_registry/${id}`, {
        method: 'PUT',
        headers: json,
        body: JSON.stringify({
          $set: { container_registry_metadata: { n, pad: 'x'.repeat(METADATA_BYTES) } },
        }),
      });
      await res.arrayBuffer();
      expect(res.status).to.equal(200);
      putMs.push(performance.now() - started);
      if (n % 20 === 0) rssPeak = Math.max(rssPeak, rssBytes(pid));
    }
    await eventually(() => readerEvents >= EVENTS, `the reading client gets all ${EVENTS} events`, 30_000);
    rssPeak = Math.max(rssPeak, rssBytes(pid));
    const published = EVENTS * METADATA_BYTES;

    // Now read what the stuck client was sent: less than everything, then the end of the stream.
    let stuckBytes = 0;
    stuck.on('data', (chunk: Buffer) => (stuckBytes += chunk.length));
    stuck.resume();
    await eventually(() => stuckClosed, 'the stuck client to be disconnected', 10_000);
    reader.abort();
    await reading;
    putMs.sort((a, b) => a - b);
    const p99 = putMs[Math.floor(putMs.length * 0.99)]!;
    console.log(
      `      stuck client got ${(stuckBytes / 1e6).toFixed(1)} of ${(published / 1e6).toFixed(1)} MB; server RSS ${(rssBefore / 1e6).toFixed(0)} -> peak ${(rssPeak / 1e6).toFixed(0)} MB; PUT p99 ${p99.toFixed(0)} ms (loaded machine)`,
    );
    expect(stuckBytes, 'dropped before everything was sent').to.be.lessThan(published);
    // Memory is bounded by the drop (a client's queue never exceeds EVENTS_CLIENT_BUFFER events);
    // RSS is logged, not asserted: the 64 KiB PUTs themselves move it more than the queue would.
    expect(p99, 'PUT p99 ms').to.be.lessThan(2_000);
  });
});
