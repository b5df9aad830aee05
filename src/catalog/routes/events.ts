import type { RequestHandler } from 'express';
import { ValidationError } from '../errors.js';
import { EventStream } from '../events/event-stream.js';
import { idAt } from '../events/event-types.js';
import type { CloudEvent } from '../events/event-types.js';
import type { CatalogServices } from './services.js';

/** What an event id looks like (domain/event-types.ts `newEventId`). */
const EVENT_ID = /^\d{13}-[0-9a-z]{5,12}-[0-9a-f]{8}$/;

/** One SSE message: the id (for `Last-Event-ID`), the type as the SSE event name, the CloudEvent as data. */
function message(event: CloudEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

/**
 * `GET /events`: Server-Sent Events. Resumes after `Last-Event-ID` (header, or `?last_event_id=`)
 * from the outbox, then streams live events. Each client has a bounded buffer: one that reads
 * slower than events come (its socket stays full) is dropped when the buffer is full, never
 * buffered without end; a comment line every `heartbeatMs` keeps proxies from closing idle streams.
 */
export const streamEvents = ({ eventStream }: CatalogServices): RequestHandler =>
  async function streamEvents(req, res) {
    const stream = eventStream!;
    const options = stream.limits;
    const filter = EventStream.parseFilter(req.query as Record<string, unknown>);
    const resumeFrom = req.get('last-event-id') ?? req.query.last_event_id;
    if (resumeFrom !== undefined && (typeof resumeFrom !== 'string' || !EVENT_ID.test(resumeFrom)))
      throw ValidationError.of(
        [{ pointer: '/last_event_id', message: 'must be an event id this server sent' }],
        'Invalid Last-Event-ID',
      );
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    });
    res.write(': connected\n\n');
    const queue: CloudEvent[] = [];
    // A fresh client gets what happens from now on (the poller re-reads a little of the past).
    let lastSent: string = resumeFrom ?? idAt(Date.now());
    let catchingUp = resumeFrom !== undefined;
    let blocked = false;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      leave();
      clearInterval(heartbeat);
      res.end();
    };
    const flush = () => {
      while (!closed && !blocked && !catchingUp && queue.length > 0) {
        const event = queue.shift()!;
        if (event.id <= lastSent) continue;
        lastSent = event.id;
        if (!res.write(message(event))) {
          blocked = true;
          res.once('drain', () => {
            blocked = false;
            flush();
          });
        }
      }
    };
    const leave = stream.join(
      filter,
      (event) => {
        queue.push(event);
        // A client whose socket stays full while events pile up is dropped, not buffered forever.
        if (queue.length > options.clientBuffer) {
          closed = true;
          leave();
          clearInterval(heartbeat);
          res.destroy();
          return;
        }
        flush();
      },
      close,
    );
    const heartbeat = setInterval(() => {
      if (!blocked && !closed) res.write(': keepalive\n\n');
    }, options.heartbeatMs);
    heartbeat.unref();
    res.once('close', close);
    if (resumeFrom !== undefined) {
      for await (const event of stream.since(resumeFrom, filter)) {
        if (closed) return;
        lastSent = event.id;
        if (!res.write(message(event)))
          await new Promise((resolve) => {
            res.once('drain', resolve);
            res.once('close', resolve);
          });
      }
      catchingUp = false;
      flush();
    }
  };
