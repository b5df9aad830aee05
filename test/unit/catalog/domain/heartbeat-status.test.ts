import { expect } from 'chai';
import { heartbeatView, isStaleTransition } from '../../../../src/catalog/domain/heartbeat-status.js';
import type { HeartbeatInstance, HeartbeatRecord } from '../../../../src/catalog/model.js';

const T0 = Date.parse('2026-12-02T00:00:00Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();
const instance = (
  id: string,
  lastSeenMs: number,
  status: 'live' | 'draining' = 'live',
): HeartbeatInstance => ({
  instance_id: id,
  status,
  version: '1',
  storage: { used_bytes: null, free_bytes: null },
  repositories: null,
  interval_s: 10,
  started_at: at(0),
  last_seen: at(lastSeenMs),
});
const record = (instances: HeartbeatInstance[], staleSince: string | null = null): HeartbeatRecord => ({
  registry_id: 'r',
  owner: null,
  registered_at: at(0),
  last_seen:
    instances.length === 0 ? null : at(Math.max(...instances.map((i) => Date.parse(i.last_seen) - T0))),
  instances,
  stale_since: staleSince,
});

describe('heartbeat status (self-registration)', () => {
  it('is live within three intervals, stale after', () => {
    const one = record([instance('a', 0)]);
    expect(heartbeatView(one, T0 + 30_000).status).to.equal('live');
    expect(heartbeatView(one, T0 + 30_001).status).to.equal('stale');
    expect(heartbeatView(one, T0 + 30_001).stale_after_s).to.equal(30);
  });

  it('is live while any replica beats, draining while only draining ones do', () => {
    const mixed = record([instance('a', 0), instance('b', 25_000, 'draining'), instance('c', 25_000)]);
    expect(heartbeatView(mixed, T0 + 40_000).status).to.equal('live');
    expect(heartbeatView(mixed, T0 + 40_000).instances.map((i) => i.status)).to.deep.equal([
      'stale',
      'draining',
      'live',
    ]);
    const draining = record([instance('a', 0), instance('b', 25_000, 'draining')]);
    expect(heartbeatView(draining, T0 + 40_000).status).to.equal('draining');
  });

  it('yields a stale transition once: not before it is stale, not after it was announced, not when never live', () => {
    const one = record([instance('a', 0)]);
    expect(isStaleTransition(one, T0 + 20_000)).to.equal(false);
    expect(isStaleTransition(one, T0 + 31_000)).to.equal(true);
    expect(isStaleTransition(record([instance('a', 0)], at(31_000)), T0 + 60_000)).to.equal(false);
    expect(isStaleTransition(record([]), T0 + 60_000)).to.equal(false);
  });
});
