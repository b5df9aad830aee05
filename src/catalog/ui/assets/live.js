/**
 * Live updates. `GET /events` streams Server-Sent Events (`event: <type>`, CloudEvents JSON in
 * `data:`); EventSource cannot send an Authorization header, so the stream is read with fetch.
 * When the catalog has no /events (404), or the stream drops, the visible page is polled
 * instead, and only while the tab is visible.
 */
import { API_ROOT, authHeaders } from './api.js';

/** How often the visible page is reloaded without a live stream. */
export const POLL_MS = 3000;
/** With a live stream, a slow reload still catches what no event announces. */
const SAFETY_POLL_MS = 30_000;
const RECONNECT_MS = [1000, 2000, 5000, 10_000, 30_000];

/** Splits a text/event-stream into `{type, data}` events (the WHATWG parsing rules, minus retry). */
export class EventStreamParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    this.type = '';
    this.data = [];
  }

  push(text) {
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop() ?? '';
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === '') {
      if (this.data.length > 0) this.onEvent({ type: this.type || 'message', data: this.data.join('\n') });
      this.type = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return; // a comment (keep-alive)
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data.push(value);
  }
}

/**
 * Keeps the page fresh: calls `refresh()` when an event arrives (debounced) or on each poll, and
 * tells `onMode('live' | 'polling' | 'connecting')` how it is kept fresh.
 */
export class LiveUpdates {
  constructor({ refresh, onMode }) {
    this.refresh = refresh;
    this.onMode = onMode;
    this.mode = 'connecting';
    this.attempt = 0;
    this.stopped = false;
    this.timer = undefined;
    this.poller = undefined;
    this.controller = undefined;
    this.debounce = undefined;
  }

  start() {
    this.stopped = false;
    void this.connect();
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
    clearTimeout(this.timer);
    clearTimeout(this.debounce);
    clearInterval(this.poller);
  }

  setMode(mode) {
    this.mode = mode;
    clearInterval(this.poller);
    this.poller = setInterval(
      () => {
        if (!document.hidden) this.refresh();
      },
      mode === 'live' ? SAFETY_POLL_MS : POLL_MS,
    );
    this.onMode(mode);
  }

  async connect() {
    if (this.stopped) return;
    this.controller = new AbortController();
    let response;
    try {
      response = await fetch(new URL('events', API_ROOT), {
        headers: { accept: 'text/event-stream', ...authHeaders() },
        signal: this.controller.signal,
        cache: 'no-store',
      });
    } catch {
      return this.retry();
    }
    if (response.status === 404) {
      // This catalog has no event stream: poll for good.
      void response.body?.cancel();
      this.setMode('polling');
      return;
    }
    const type = response.headers.get('content-type') ?? '';
    if (!response.ok || !type.startsWith('text/event-stream') || !response.body) {
      void response.body?.cancel();
      return this.retry();
    }
    this.attempt = 0;
    this.setMode('live');
    // Whatever changed while no stream was open is picked up by one reload now.
    this.refresh();
    const parser = new EventStreamParser(() => this.soon());
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
      }
    } catch {
      // The stream was cut (server restart, network): reconnect below.
    }
    this.retry();
  }

  /** Polls until a reconnection attempt succeeds. */
  retry() {
    if (this.stopped) return;
    if (this.mode !== 'polling') this.setMode('polling');
    const delay = RECONNECT_MS[Math.min(this.attempt, RECONNECT_MS.length - 1)];
    this.attempt += 1;
    this.timer = setTimeout(() => void this.connect(), delay);
  }

  /** Several events in a burst cost one reload. */
  soon() {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.refresh(), 250);
  }
}
