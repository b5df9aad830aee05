import type { Logger } from '../../shared/logger.js';
import { ValidationError } from '../errors.js';
import type { CloudEvent, EventStore, StoredEvent } from '../store/event-store.js';
import type { EventPublisher } from './event-publisher.js';
import { idAt, typeMatcher } from './event-types.js';
import { parseId } from '../domain/parameters.js';

/** What an SSE client asked for: type patterns (any matches; none: all) and a registry. */
export interface StreamFilter {
  readonly types: ReadonlyArray<(type: string) => boolean>;
  readonly registryId: string | undefined;
}

/** One client of the stream: `push` takes an event (false: the client's buffer overflowed). */
interface Client {
  readonly filter: StreamFilter;
  readonly push: (event: CloudEvent) => void;
  /** Ends the client's response (shutdown). */
  readonly end: () => void;
}

export interface EventStreamDeps {
  readonly store: EventStore;
  readonly publisher: EventPublisher;
  readonly pollMs: number;
  /** Per client: a comment line this often, and at most this many events waiting for its socket. */
  readonly limits: { readonly heartbeatMs: number; readonly clientBuffer: number };
  readonly logger: Logger;
  readonly now?: () => number;
}

/** How far back each poll re-reads: rows other replicas wrote with slightly older ids still show. */
const OVERLAP_MS = 2_000;
const POLL_PAGE = 1_000;
const RESUME_PAGE = 500;
/** Events replayed to a resuming client at most (older ones: it should re-read state instead). */
export const MAX_RESUME = 10_000;

/**
 * The live side of `GET /events`: one poller per replica reads new outbox rows (woken at once by
 * local publishes, every `pollMs` for other replicas' rows) and hands each to every matching
 * client. Resuming (`Last-Event-ID`) reads the outbox from that id first.
 */
export class EventStream {
  private readonly clients = new Set<Client>();
  private readonly seen = new Map<string, number>();
  private newestMs: number;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private again = false;
  private unsubscribe: (() => void) | undefined;
  private readonly now: () => number;
  readonly limits: EventStreamDeps['limits'];

  constructor(private readonly deps: EventStreamDeps) {
    this.now = deps.now ?? Date.now;
    this.limits = deps.limits;
    this.newestMs = this.now();
  }

  /** Parses `?type=` (repeatable, comma lists, `registry.*`) and `?registry=`. */
  static parseFilter(query: Record<string, unknown>): StreamFilter {
    const raw = query.type === undefined ? [] : Array.isArray(query.type) ? query.type : [query.type];
    const patterns = raw
      .flatMap((value) => String(value).split(','))
      .map((part) => part.trim())
      .filter(Boolean);
    const types = patterns.map((pattern, i) => {
      const matcher = typeMatcher(pattern);
      if (!matcher)
        throw ValidationError.of(
          [{ pointer: `/type/${i}`, message: `names no event type (${pattern.slice(0, 64)})` }],
          'Invalid type',
        );
      return matcher;
    });
    if (query.registry !== undefined && typeof query.registry !== 'string')
      throw ValidationError.of([{ pointer: '/registry', message: 'must be given once' }], 'Invalid registry');
    return { types, registryId: query.registry === undefined ? undefined : parseId(query.registry) };
  }

  static matches(filter: StreamFilter, event: CloudEvent): boolean {
    const registryId = (event.data as { container_registry_id?: unknown }).container_registry_id;
    if (filter.registryId !== undefined && registryId !== filter.registryId) return false;
    return filter.types.length === 0 || filter.types.some((matches) => matches(event.type));
  }

  /** Events after `lastEventId` (oldest first, at most `MAX_RESUME`) that match `filter`. */
  async *since(lastEventId: string, filter: StreamFilter): AsyncIterable<CloudEvent> {
    let after = lastEventId;
    for (let sent = 0; sent < MAX_RESUME;) {
      const page = await this.deps.store.eventsAfter(
        after,
        filter.registryId === undefined ? {} : { registry_id: filter.registryId },
        RESUME_PAGE,
      );
      for (const row of page) {
        after = row.event_id;
        if (EventStream.matches(filter, row.event)) {
          sent++;
          yield row.event;
        }
      }
      if (page.length < RESUME_PAGE) return;
    }
  }

  /** Adds a live client; returns the function that removes it. */
  join(filter: StreamFilter, push: (event: CloudEvent) => void, end: () => void): () => void {
    const client = { filter, push, end };
    this.clients.add(client);
    if (this.clients.size === 1) this.startPolling();
    return () => {
      this.clients.delete(client);
      if (this.clients.size === 0) this.stopPolling();
    };
  }

  /** Ends every client's stream and stops polling (shutdown: open streams would hold the server's drain). */
  close(): void {
    for (const client of this.clients) client.end();
    this.clients.clear();
    this.stopPolling();
  }

  private startPolling(): void {
    this.newestMs = Math.max(this.newestMs, this.now() - OVERLAP_MS);
    this.unsubscribe = this.deps.publisher.onPublished(() => this.poll());
    this.poll();
  }

  private stopPolling(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private poll(): void {
    if (this.clients.size === 0) return;
    if (this.polling) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.polling = this.readNew()
      .catch((error: unknown) => this.deps.logger.warn({ err: error }, 'event stream poll failed'))
      .finally(() => {
        this.polling = undefined;
        if (this.clients.size === 0) return;
        if (this.again) {
          this.again = false;
          this.poll();
          return;
        }
        this.timer = setTimeout(() => this.poll(), this.deps.pollMs);
        this.timer.unref();
      });
  }

  private async readNew(): Promise<void> {
    for (;;) {
      const from = idAt(this.newestMs - OVERLAP_MS);
      const rows: StoredEvent[] = await this.deps.store.eventsAfter(from, {}, POLL_PAGE);
      let fresh = 0;
      for (const row of rows) {
        if (this.seen.has(row.event_id)) continue;
        fresh++;
        const ms = Number(row.event_id.slice(0, 13));
        this.seen.set(row.event_id, ms);
        this.newestMs = Math.max(this.newestMs, ms);
        for (const client of this.clients)
          if (EventStream.matches(client.filter, row.event)) client.push(row.event);
      }
      // Ids older than the re-read window can never come back: forget them.
      const horizon = this.newestMs - OVERLAP_MS * 2;
      for (const [id, ms] of this.seen) if (ms < horizon) this.seen.delete(id);
      if (rows.length < POLL_PAGE || fresh === 0) return;
    }
  }
}
