import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Http1Pool, type Http1Response } from '../../../src/oci/proxy/http1-get.js';
import { selfSignedCertificate, serve, type Target } from '../../helpers/probe-targets.js';

/** Every chunk of a body, and the bytes joined. */
async function drain(response: Http1Response): Promise<{ bytes: Buffer; chunks: number[] }> {
  const parts: Buffer[] = [];
  for await (const chunk of response) parts.push(chunk as Buffer);
  return { bytes: Buffer.concat(parts), chunks: parts.map((part) => part.length) };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (error: Error) => error,
  );
}

/** A loopback TCP server answering every connection with `answer` (raw bytes), then `after`. */
async function rawServer(
  answer: (socket: net.Socket) => void,
): Promise<{ url: string; connections: () => number; close(): Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', () => answer(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('proxy HTTP/1.1 GET client (bodies read in large pieces)', () => {
  let pool: Http1Pool;
  const servers: Array<{ close(): Promise<void> }> = [];
  const signal = () => new AbortController().signal;
  beforeEach(() => (pool = new Http1Pool()));
  afterEach(async () => {
    pool.close();
    for (const server of servers.splice(0)) await server.close();
  });

  async function track<T extends { close(): Promise<void> }>(server: Promise<T>): Promise<T> {
    const started = await server;
    servers.push(started);
    return started;
  }

  const blob = randomBytes(6 * 1024 * 1024 + 7);
  const blobHandler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.url === '/chunked') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      for (let at = 0; at < blob.length; at += 100_003) res.write(blob.subarray(at, at + 100_003));
      res.addTrailers({ 'x-trailer': 'done' });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-length': blob.length, 'x-seen': req.headers.authorization ?? '-' });
    res.end(blob);
  };

  it('reads a Content-Length body byte for byte, in pieces far larger than 64 KiB, and sends our headers', async () => {
    const target: Target = await track(serve(blobHandler));
    const response = await pool.get(new URL(`${target.url}/blob`), { Authorization: 'Bearer t' }, signal());
    expect(response.statusCode).to.equal(200);
    expect(response.headers['content-length']).to.equal(String(blob.length));
    expect(response.headers['x-seen']).to.equal('Bearer t');
    const { bytes, chunks } = await drain(response);
    expect(bytes.equals(blob)).to.equal(true);
    // node:http hands out at most 64 KiB per read; here a read fills what is left of a 1 MiB slab.
    expect(Math.max(...chunks)).to.be.above(64 * 1024);
    expect(chunks.length).to.be.below(blob.length / (64 * 1024));
  });

  it('reads into slabs whose chunks all came back, never into one with a chunk still out', async () => {
    const target = await track(serve(blobHandler));
    const kept: Array<{ chunk: Buffer; copy: Buffer }> = [];
    const memories = new Set<ArrayBufferLike>();
    let chunks = 0;
    for (let round = 0; round < 3; round += 1) {
      const response = await pool.get(new URL(`${target.url}/blob`), {}, signal());
      let offset = 0;
      for await (const data of response) {
        const chunk = data as Buffer;
        expect(chunk.equals(blob.subarray(offset, offset + chunk.length))).to.equal(true);
        offset += chunk.length;
        chunks += 1;
        memories.add(chunk.buffer);
        // Every fifth chunk stays out (a write that has not completed); the rest come back.
        if (chunks % 5 === 0) kept.push({ chunk, copy: Buffer.from(chunk) });
        else response.recycle(chunk);
      }
      expect(offset).to.equal(blob.length);
    }
    // Recycling: far fewer slabs than chunks. Chunks still out were never overwritten.
    expect(memories.size).to.be.below(chunks / 2);
    for (const { chunk, copy } of kept) expect(chunk.equals(copy)).to.equal(true);
  });

  it('keeps the connection for the next GET to the same origin, and replaces one the server closed', async () => {
    const target = await track(serve(blobHandler));
    for (let round = 0; round < 3; round += 1)
      await drain(await pool.get(new URL(`${target.url}/blob`), {}, signal()));
    expect(target.connections()).to.equal(1);
    // The server drops its idle connections: the next GET notices and goes on a new one.
    (target.requests[0]?.socket as net.Socket).destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const { bytes } = await drain(await pool.get(new URL(`${target.url}/blob`), {}, signal()));
    expect(bytes.equals(blob)).to.equal(true);
    expect(target.connections()).to.equal(2);
  });

  it('decodes a chunked body with trailers, and reuses its connection', async () => {
    const target = await track(serve(blobHandler));
    const response = await pool.get(new URL(`${target.url}/chunked`), {}, signal());
    expect(response.headers['transfer-encoding']).to.equal('chunked');
    expect((await drain(response)).bytes.equals(blob)).to.equal(true);
    await drain(await pool.get(new URL(`${target.url}/blob`), {}, signal()));
    expect(target.connections()).to.equal(1);
  });

  it('reads a body that ends with the connection, skips 1xx answers, and decodes chunk extensions', async () => {
    const closing = await track(
      rawServer((socket) =>
        socket.end('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-A:  spaced \t\r\n\r\nuntil the end'),
      ),
    );
    const response = await pool.get(new URL(`${closing.url}/`), {}, signal());
    expect(response.headers['x-a']).to.equal('spaced');
    expect((await drain(response)).bytes.toString()).to.equal('until the end');
    const extensions = await track(
      rawServer((socket) =>
        socket.write(
          'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n1\r\n!\r\n0\r\nX-T: 1\r\n\r\n',
        ),
      ),
    );
    const chunked = await pool.get(new URL(`${extensions.url}/`), {}, signal());
    expect((await drain(chunked)).bytes.toString()).to.equal('hello!');
  });

  it('a body that ends while its reader is behind leaves a connection that still reads: the next GET on it is answered', async () => {
    const size = 4 * 1024 * 1024 + 64 * 1024;
    const tail = 128 * 1024;
    let requests = 0;
    const server = await track(
      rawServer((socket) => {
        const answer = () => {
          requests += 1;
          if (requests > 1) return void socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
          socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
          socket.write(Buffer.alloc(size - tail, 1));
          // The last bytes come while the reader's buffer is full: the read that ends the body
          // is one whose push says "no more for now".
          setTimeout(() => socket.write(Buffer.alloc(tail, 2)), 300);
        };
        answer();
        socket.on('data', answer);
      }),
    );
    const first = await pool.get(new URL(`${server.url}/a`), {}, signal());
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect((await drain(first)).bytes.length).to.equal(size);
    const second = await pool.get(new URL(`${server.url}/b`), {}, AbortSignal.timeout(3000));
    expect((await drain(second)).bytes.toString()).to.equal('ok');
    expect(server.connections()).to.equal(1);
  });

  it('pushes one piece per read however many tiny chunks it holds (a Buffer per chunk would cost 100x the bytes)', async () => {
    const count = 200_000;
    const server = await track(
      rawServer((socket) =>
        socket.end(
          `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${'1\r\nX\r\n'.repeat(count)}0\r\n\r\n`,
        ),
      ),
    );
    const response = await pool.get(new URL(`${server.url}/`), {}, signal());
    // 'data' events in flowing mode are the pieces as pushed (an async iterator would join them).
    const pieces: Buffer[] = [];
    response.on('data', (piece: Buffer) => pieces.push(piece));
    await new Promise((resolve) => response.on('end', resolve));
    expect(Buffer.concat(pieces).toString()).to.equal('X'.repeat(count));
    expect(pieces.length).to.be.below(count / 100);
  });

  it('does not reuse a connection after a 204 that announced a body, or after a body ended by the close', async () => {
    const announcing = await track(
      rawServer((socket) => {
        const answer = () => void socket.write('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n');
        answer();
        socket.on('data', answer);
      }),
    );
    for (let round = 0; round < 2; round += 1)
      await drain(await pool.get(new URL(`${announcing.url}/`), {}, signal()));
    expect(announcing.connections()).to.equal(2);
  });

  const hostile: Array<[string, string, RegExp]> = [
    ['a malformed status line', 'HTTP/2 200 OK\r\n\r\n', /malformed status line/],
    ['a header line without a colon', 'HTTP/1.1 200 OK\r\nbroken\r\n\r\n', /malformed header line/],
    ['a folded header', 'HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n', /malformed header line/],
    ['a control character in a value', 'HTTP/1.1 200 OK\r\nA: b\u0001c\r\n\r\n', /control character/],
    [
      'Content-Length with Transfer-Encoding',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n',
      /with Transfer-Encoding/,
    ],
    [
      'two different Content-Lengths',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
      /two different/,
    ],
    [
      'a negative Content-Length',
      'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n',
      /malformed Content-Length/,
    ],
    [
      'a transfer coding other than chunked',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
      /unsupported transfer coding/,
    ],
    ['101 Switching Protocols', 'HTTP/1.1 101 Switching Protocols\r\n\r\n', /answered 101/],
    ['endless 1xx answers', 'HTTP/1.1 102 Processing\r\n\r\n'.repeat(20), /answered 102/],
  ];
  for (const [name, answer, message] of hostile) {
    it(`refuses ${name} as a failed request`, async () => {
      const server = await track(rawServer((socket) => socket.write(answer)));
      const error = await failure(pool.get(new URL(`${server.url}/`), {}, signal()));
      expect(error.message).to.match(message);
    });
  }

  it('refuses a head that never ends (over 64 KiB) and trims a header value holding 30,000 spaces at once', async () => {
    const endless = await track(
      rawServer((socket) => socket.write(`HTTP/1.1 200 OK\r\nA: ${'x'.repeat(200_000)}`)),
    );
    expect((await failure(pool.get(new URL(`${endless.url}/`), {}, signal()))).message).to.match(
      /over 64 KiB/,
    );
    const spaces = await track(
      rawServer((socket) =>
        socket.end(`HTTP/1.1 200 OK\r\nA: x${' '.repeat(30_000)}y${' '.repeat(30_000)}\r\n\r\n`),
      ),
    );
    const started = performance.now();
    const response = await pool.get(new URL(`${spaces.url}/`), {}, signal());
    expect(response.headers.a).to.have.length(30_002);
    expect(performance.now() - started).to.be.below(1000);
  });

  const badBodies: Array<[string, string, RegExp]> = [
    [
      'a body shorter than its Content-Length',
      'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc',
      /before the answer ended|closed/,
    ],
    [
      'a malformed chunk size',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      /malformed chunk size/,
    ],
    [
      'chunk data longer than its size',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n',
      /longer than its size/,
    ],
    [
      'a chunk line without CRLF',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n',
      /without CRLF/,
    ],
    [
      'an endless chunk-size line',
      `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${'0'.repeat(5000)}`,
      /overlong chunk line/,
    ],
    [
      'a chunk size past 2^53',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20000000000000\r\n',
      /malformed chunk size/,
    ],
    [
      'a chunked body cut off',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc',
      /before the answer ended|closed/,
    ],
  ];
  for (const [name, answer, message] of badBodies) {
    it(`fails the body on ${name} (never a short body that ends well)`, async () => {
      const server = await track(rawServer((socket) => socket.end(answer)));
      const response = await pool.get(new URL(`${server.url}/`), {}, signal());
      expect((await failure(drain(response))).message).to.match(message);
    });
  }

  it('refuses to send a header value holding CR or LF (a hostile token cannot add headers)', async () => {
    const target = await track(serve(blobHandler));
    const error = await failure(
      pool.get(new URL(`${target.url}/`), { Authorization: 'Bearer a\r\nX-Evil: 1' }, signal()),
    );
    expect(error).to.be.instanceOf(TypeError);
    expect(target.requests).to.have.length(0);
  });

  it('an abort mid-body fails the body and closes the connection; a paused reader stops the socket reads', async () => {
    const huge = 256 * 1024 * 1024;
    let sent = 0;
    const block = Buffer.alloc(1024 * 1024);
    const target = await track(
      serve((_req, res) => {
        res.writeHead(200, { 'content-length': huge });
        const pump = () => {
          while (sent < huge) {
            sent += block.length;
            if (!res.write(block)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
      }),
    );
    const controller = new AbortController();
    const response = await pool.get(new URL(`${target.url}/`), {}, controller.signal);
    response.pause();
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The reader holds at most its 4 MiB high water mark plus the kernel's socket buffers.
    expect(sent).to.be.below(64 * 1024 * 1024);
    const failed = failure(drain(response));
    controller.abort();
    expect((await failed).name).to.equal('AbortError');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((target.requests[0]?.socket as net.Socket).destroyed).to.equal(true);
  });

  it('speaks TLS: verifies the certificate against the trusted CAs, refuses an untrusted one', async function () {
    this.timeout(60_000);
    const certificate = selfSignedCertificate();
    const target = await track(serve(blobHandler, { tls: certificate }));
    const error = await failure(pool.get(new URL(`${target.url}/blob`), {}, signal()));
    expect(error.message).to.match(/self.signed certificate/);
    // Trusted through NODE_EXTRA_CA_CERTS (read at process start): a child process GETs the blob.
    const dir = mkdtempSync(path.join(tmpdir(), 'http1-tls-'));
    try {
      writeFileSync(path.join(dir, 'ca.pem'), certificate.cert);
      const script = `
        import { Http1Pool } from ${JSON.stringify(path.resolve('src/oci/proxy/http1-get.ts'))};
        import { createHash } from 'node:crypto';
        const pool = new Http1Pool();
        const response = await pool.get(new URL(${JSON.stringify(`${target.url}/blob`)}), {}, new AbortController().signal);
        const hash = createHash('sha256');
        for await (const chunk of response) hash.update(chunk);
        console.log(response.statusCode, hash.digest('hex'));
        pool.close();`;
      // Not execFileSync: the server answering the child runs on this process's event loop.
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script],
        { env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.pem') }, timeout: 30_000 },
      );
      expect(stdout.trim()).to.equal(`200 ${createHash('sha256').update(blob).digest('hex')}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
