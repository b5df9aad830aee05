import { expect } from 'chai';
import { idAt, matchesAny, newEventId, typeMatcher } from '../../../../src/catalog/events/event-types.js';
import { generateSecret, secretKey, sign, verify } from '../../../../src/catalog/events/webhook-signature.js';
import { backoff } from '../../../../src/catalog/jobs/webhook-delivery.js';

describe('Standard Webhooks signatures', () => {
  it('match the test vector of the Standard Webhooks reference libraries', () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const body = '{"test": 2432232314}';
    expect(sign(secret, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, body)).to.equal(
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    );
    expect(
      verify(
        secret,
        'msg_p5jXN8AQM9LWM0D4loKWxJek',
        1614265330,
        body,
        'v1,bad v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
      ),
    ).to.equal(true);
    expect(
      verify(
        secret,
        'msg_p5jXN8AQM9LWM0D4loKWxJek',
        1614265331,
        body,
        'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
      ),
    ).to.equal(false);
  });

  it('take whsec_ secrets of 24 to 64 bytes only', () => {
    expect(secretKey(generateSecret())).to.have.length(32);
    expect(secretKey(`whsec_${Buffer.alloc(23).toString('base64')}`)).to.equal(undefined);
    expect(secretKey(`whsec_${Buffer.alloc(65).toString('base64')}`)).to.equal(undefined);
    expect(secretKey(Buffer.alloc(32).toString('base64'))).to.equal(undefined);
    expect(secretKey('whsec_not base64!')).to.equal(undefined);
  });
});

describe('event types and ids', () => {
  it('match exact types, prefixes and *; refuse what names nothing', () => {
    expect(matchesAny(['registry.*'], 'registry.health.changed')).to.equal(true);
    expect(matchesAny(['registry.health.*'], 'registry.created')).to.equal(false);
    expect(matchesAny(['*'], 'image.pushed')).to.equal(true);
    expect(typeMatcher('registry')).to.equal(undefined);
    expect(typeMatcher('nope.*')).to.equal(undefined);
  });

  it('sort by creation time, never backwards in one process', () => {
    // Around now, not ahead of it: ids made later in this process keep the real clock.
    const t = Date.now() + 50;
    const ids = [newEventId(t), newEventId(t), newEventId(t - 1_000), newEventId(t + 1)];
    expect([...ids].sort()).to.deep.equal(ids);
    expect(idAt(t) < ids[0]!).to.equal(true);
    expect(idAt(t + 1) > ids[2]!).to.equal(true);
  });
});

describe('webhook retry backoff', () => {
  it('doubles from the initial delay, is capped, and is jittered in [d/2, d)', () => {
    const config = { retryInitialMs: 100, retryMaxMs: 1_000 };
    for (let i = 0; i < 200; i++) {
      const first = backoff(1, config);
      expect(first).to.be.within(50, 100);
      expect(backoff(3, config)).to.be.within(200, 400);
      expect(backoff(30, config)).to.be.within(500, 1_000);
    }
  });
});
