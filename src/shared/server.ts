import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './logger.js';

export interface RunningServer {
  readonly server: http.Server;
  readonly port: number;
  readonly url: string;
  /** Stops accepting connections, lets in-flight requests finish (up to `timeoutMs`), then closes the rest. */
  close(timeoutMs?: number): Promise<void>;
}

export interface ListenOptions {
  host: string;
  port: number;
  logger?: Logger;
  timeouts?: {
    /** Time to receive a request's headers. */
    headersTimeoutMs: number;
    /** Time to receive a whole request (headers and body). */
    requestTimeoutMs: number;
    /** How long an idle keep-alive connection is kept. */
    keepAliveTimeoutMs: number;
  };
}

const DEFAULT_TIMEOUTS = { headersTimeoutMs: 20_000, requestTimeoutMs: 300_000, keepAliveTimeoutMs: 5_000 };

type Where = { readonly host: string; readonly port: number };

/** Why a listen failed, in words, for the errors a user causes by configuration. */
const LISTEN_PROBLEMS: Readonly<Record<string, (where: Where) => string>> = {
  EADDRINUSE: ({ port }) => `port ${port} is already in use (choose another with --port)`,
  EACCES: ({ port }) =>
    `port ${port} needs privileges this process lacks (choose one above 1023 with --port)`,
  EADDRNOTAVAIL: ({ host }) => `${host} is not an address of this machine (choose another with --host)`,
};

/** A server could not listen (port taken, no permission, foreign address): one line for the user, no stack. */
export class ListenError extends Error {
  override name = 'ListenError';
  constructor(
    where: Where,
    readonly code: string,
  ) {
    const address = where.host.includes(':')
      ? `[${where.host}]:${where.port}`
      : `${where.host}:${where.port}`;
    super(`cannot listen on ${address}: ${LISTEN_PROBLEMS[code]!(where)}`);
  }
}

/**
 * Listens with timeouts that stop slow clients from holding sockets (slowloris), and returns a
 * handle whose `close` drains in-flight requests. Only entry points and tests call this.
 */
export async function listen(handler: http.RequestListener, options: ListenOptions): Promise<RunningServer> {
  const timeouts = options.timeouts ?? DEFAULT_TIMEOUTS;
  const server = http.createServer(
    {
      headersTimeout: timeouts.headersTimeoutMs,
      requestTimeout: timeouts.requestTimeoutMs,
      keepAliveTimeout: timeouts.keepAliveTimeoutMs,
      // Node enforces the two timeouts above on this period (30 s by default): check often enough
      // that a slow client is cut off close to its deadline.
      connectionsCheckingInterval: Math.min(1_000, timeouts.headersTimeoutMs),
    },
    handler,
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code !== undefined && LISTEN_PROBLEMS[error.code]
          ? new ListenError(options, error.code)
          : error,
      ),
    );
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    server,
    port,
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    close: (timeoutMs = 10_000) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
        // Keep-alive connections become idle once their in-flight response is sent: close them then.
        const sweeper = setInterval(() => server.closeIdleConnections(), 50);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          clearInterval(sweeper);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

/** Runs `stop` once on the first SIGTERM or SIGINT; a second signal exits at once. */
export function onShutdownSignal(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}
