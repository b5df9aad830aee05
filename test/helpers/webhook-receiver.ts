import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';

/** One request a receiver got, with the verdict on its signature. */
export interface Received {
  readonly id: string;
  readonly timestamp: number;
  readonly signatureValid: boolean;
  readonly body: string;
  readonly event: {
    id: string;
    type: string;
    time: string;
    data: Record<string, unknown>;
    [key: string]: unknown;
  };
}

/**
 * A loopback webhook receiver for tests. It checks every request's Standard Webhooks signature
 * itself (HMAC-SHA256 over `id.timestamp.body` with the `whsec_` key, written here apart from
 * the catalog's code), records accepted deliveries, and can be taken down (503) or made to hang.
 */
export interface WebhookReceiver {
  readonly url: string;
  /** Every request answered 2xx, in arrival order. */
  readonly received: Received[];
  /** Requests refused while down, or hung. */
  refused: number;
  mode: 'up' | 'down' | 'hang';
  /** Milliseconds to wait before answering 2xx. */
  delayMs: number;
  close(): Promise<void>;
}

export async function startReceiver(secret: string): Promise<WebhookReceiver> {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const state: WebhookReceiver = {
    url: '',
    received: [],
    refused: 0,
    mode: 'up',
    delayMs: 0,
    close: async () => undefined,
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (state.mode === 'hang') {
        state.refused++;
        return; // never answers: the sender's deadline must end it
      }
      if (state.mode === 'down') {
        state.refused++;
        res.writeHead(503).end();
        return;
      }
      const body = Buffer.concat(chunks).toString('utf8');
      const id = String(req.headers['webhook-id']);
      const timestamp = Number(req.headers['webhook-timestamp']);
      const expected = `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
      const given = String(req.headers['webhook-signature'] ?? '');
      const signatureValid = given
        .split(' ')
        .some(
          (candidate) =>
            candidate.length === expected.length &&
            timingSafeEqual(Buffer.from(candidate), Buffer.from(expected)),
        );
      const answer = () => {
        state.received.push({
          id,
          timestamp,
          signatureValid,
          body,
          event: JSON.parse(body) as Received['event'],
        });
        res.writeHead(204).end();
      };
      if (state.delayMs > 0) setTimeout(answer, state.delayMs);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/hook`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

/** Polls `condition` every 20 ms until it holds, or fails after `timeoutMs` naming `what`. */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Each webhook-id once, after checking every delivery's signature and that a redelivery carries
 * the same body (at least once, duplicates identical); returns the distinct deliveries.
 */
export function distinct(received: readonly Received[]): Received[] {
  const byId = new Map<string, Received>();
  for (const r of received) {
    expect(r.signatureValid, 'signature').to.equal(true);
    const seen = byId.get(r.id);
    if (seen) expect(r.body, `duplicate ${r.id} carries the same event`).to.equal(seen.body);
    else byId.set(r.id, r);
  }
  return [...byId.values()];
}
