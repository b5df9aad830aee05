import net from 'node:net';

/**
 * A loopback TCP proxy in front of a MongoDB/FerretDB: it reads the OP_MSG commands the driver
 * sends and the replies, and counts commands by name (round trips) and the most of each name
 * in flight at once. Bytes pass through unchanged.
 */
export interface MongoWireProxy {
  /** A connection string for the proxy. */
  readonly uri: string;
  /** Commands sent, by name. */
  readonly counts: Map<string, number>;
  /** The most commands of each name awaiting their reply at the same time. */
  readonly maxInFlight: Map<string, number>;
  close(): Promise<void>;
}

const OP_MSG = 2013;

/** The first key of an OP_MSG's body section is the command name (MongoDB wire protocol). */
function commandName(message: Buffer): string | undefined {
  if (message.readInt32LE(12) !== OP_MSG) return undefined;
  let at = 16 + 4; // header, flagBits
  if (message[at] !== 0) return undefined; // the body section comes first
  at += 1 + 4 + 1; // kind, document length, element type
  return message.toString('latin1', at, message.indexOf(0, at));
}

/** Calls `each` with every whole message of the stream (header: int32 length first). */
function messages(each: (message: Buffer) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 4 && pending.length >= pending.readInt32LE(0)) {
      const length = pending.readInt32LE(0);
      each(pending.subarray(0, length));
      pending = pending.subarray(length);
    }
  };
}

export async function startMongoWireProxy(upstreamUri: string): Promise<MongoWireProxy> {
  const upstream = new URL(upstreamUri);
  const counts = new Map<string, number>();
  const maxInFlight = new Map<string, number>();
  const inFlight = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const server = net.connect(Number(upstream.port), upstream.hostname);
    sockets.add(client).add(server);
    const awaiting = new Map<number, string>(); // request id -> command name
    client.on(
      'data',
      messages((message) => {
        const name = commandName(message);
        if (!name) return;
        counts.set(name, (counts.get(name) ?? 0) + 1);
        const now = (inFlight.get(name) ?? 0) + 1;
        inFlight.set(name, now);
        maxInFlight.set(name, Math.max(now, maxInFlight.get(name) ?? 0));
        awaiting.set(message.readInt32LE(4), name);
      }),
    );
    server.on(
      'data',
      messages((message) => {
        const name = awaiting.get(message.readInt32LE(8)); // responseTo
        if (name === undefined) return;
        awaiting.delete(message.readInt32LE(8));
        inFlight.set(name, inFlight.get(name)! - 1);
      }),
    );
    client.on('data', (chunk: Buffer) => server.write(chunk));
    server.on('data', (chunk: Buffer) => client.write(chunk));
    const end = () => {
      client.destroy();
      server.destroy();
      sockets.delete(client);
      sockets.delete(server);
    };
    for (const socket of [client, server]) socket.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    uri: `mongodb://127.0.0.1:${(proxy.address() as net.AddressInfo).port}/`,
    counts,
    maxInFlight,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    },
  };
}
