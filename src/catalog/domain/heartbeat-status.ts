import type { HeartbeatInstance, HeartbeatRecord, HeartbeatStatus, HeartbeatView } from '../model.js';

/** Heartbeats an instance may miss before it is stale (DESIGN.md section 12). */
export const MISSED_HEARTBEATS = 3;

/** Instances silent for this many intervals are dropped from the record (a replaced pod). */
export const FORGET_AFTER_INTERVALS = 20;

/** An instance's status at `now`: what it last said, or `stale` after three missed intervals. */
export function instanceStatus(instance: HeartbeatInstance, now: number): HeartbeatStatus {
  const silentMs = now - Date.parse(instance.last_seen);
  return silentMs > MISSED_HEARTBEATS * instance.interval_s * 1000 ? 'stale' : instance.status;
}

/**
 * The heartbeat view of a record at `now`: `live` while any instance is live, `draining` while
 * the only ones still beating are draining, `stale` when none beat for three of its intervals
 * (or none ever beat). Computed when read, so it is right whether or not the watch job ran.
 */
export function heartbeatView(record: HeartbeatRecord, now: number): HeartbeatView {
  const instances = record.instances.map((instance) => ({
    ...instance,
    status: instanceStatus(instance, now),
  }));
  const status: HeartbeatStatus = instances.some((instance) => instance.status === 'live')
    ? 'live'
    : instances.some((instance) => instance.status === 'draining')
      ? 'draining'
      : 'stale';
  const longest = Math.max(0, ...record.instances.map((instance) => instance.interval_s));
  return { status, last_seen: record.last_seen, stale_after_s: MISSED_HEARTBEATS * longest, instances };
}

/**
 * Whether `record` turned stale and the transition is not announced yet: the one test the stale
 * watch (jobs/heartbeat-watch.ts) applies. A record that never got a heartbeat is not a
 * transition (it never was live).
 */
export function isStaleTransition(record: HeartbeatRecord, now: number): boolean {
  return (
    record.stale_since === null && record.last_seen !== null && heartbeatView(record, now).status === 'stale'
  );
}
