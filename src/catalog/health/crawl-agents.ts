import http from 'node:http';
import https from 'node:https';

/**
 * The keep-alive connections of one crawl: one agent per origin (the registry's, and its token
 * realm's when that is elsewhere), at most `maxSockets` sockets each (the crawl's concurrency),
 * all closed when the crawl ends. The agents do no address checking of their own: every new
 * connection is opened with the request's `lookup` (the SSRF guard, transport.ts), which checks
 * the resolved addresses and hands the socket the address it checked (no second resolution),
 * and IP literals are checked by `get` before every request.
 */
export class CrawlAgents {
  private readonly agents = new Map<string, http.Agent>();
  private closed = false;

  constructor(private readonly maxSockets: number) {}

  /** The agent for `url`'s origin, created on first use. */
  for(url: URL): http.Agent | undefined {
    if (this.closed) return undefined;
    let agent = this.agents.get(url.origin);
    if (!agent) {
      const options: http.AgentOptions = {
        keepAlive: true,
        maxSockets: this.maxSockets,
        maxFreeSockets: this.maxSockets,
        // Idle sockets are closed after 4 s, before the 5 s keep-alive timeout most servers
        // (Node's included) apply, so a request rarely meets a socket the server is closing.
        timeout: IDLE_SOCKET_MS,
      };
      agent = url.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
      this.agents.set(url.origin, agent);
    }
    return agent;
  }

  /** Closes every socket of the crawl; later requests get a connection of their own. */
  close(): void {
    this.closed = true;
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }
}

const IDLE_SOCKET_MS = 4_000;
