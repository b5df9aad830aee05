import { randomBytes } from 'node:crypto';

export type { CloudEvent } from '../store/event-store.js';

/** Every event type the catalog emits (README, "Events and webhooks"). */
export const EVENT_TYPES = [
  'registry.created',
  'registry.updated',
  'registry.deleted',
  'registry.health.changed',
  'registry.heartbeat.stale',
  'image.pushed',
  'image.deleted',
  'image.discovered',
  'image.removed',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/**
 * A type pattern as subscriptions and `GET /events?type=` take it: an exact type, a prefix
 * ending in `.*` (`registry.*`, `registry.health.*`), or `*`. Undefined when it names nothing.
 */
export function typeMatcher(pattern: string): ((type: string) => boolean) | undefined {
  if (pattern === '*') return () => true;
  if (pattern.endsWith('.*')) {
    const prefix = pattern.slice(0, -1);
    return EVENT_TYPES.some((type) => type.startsWith(prefix))
      ? (type) => type.startsWith(prefix)
      : undefined;
  }
  return (EVENT_TYPES as readonly string[]).includes(pattern) ? (type) => type === pattern : undefined;
}

/** True when `type` matches any of `patterns` (each valid per `typeMatcher`). */
export function matchesAny(patterns: readonly string[], type: string): boolean {
  return patterns.some((pattern) => typeMatcher(pattern)?.(type) ?? false);
}

const NODE = randomBytes(4).toString('hex');
let counter = 0;
let lastMs = 0;

/**
 * A new event id that sorts by creation time: `<ms, 13 digits>-<counter>-<process>`. The
 * outbox is read in id order (SSE resume, per-subscription order), so ids of one process never
 * go backwards even if the wall clock does.
 */
export function newEventId(now = Date.now()): string {
  const ms = Math.max(now, lastMs);
  if (ms !== lastMs) counter = 0;
  lastMs = ms;
  counter++;
  return `${String(ms).padStart(13, '0')}-${counter.toString(36).padStart(5, '0')}-${NODE}`;
}

/** The smallest id an event created at `ms` can have: `eventsAfter(idAt(ms))` reads from then on. */
export function idAt(ms: number): string {
  return `${String(Math.max(0, ms)).padStart(13, '0')}-`;
}
