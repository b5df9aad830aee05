import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { HashThread, RING_BYTES } from '../../../src/oci/proxy/hash-thread.js';

describe('proxy hash thread (digests over a shared ring)', () => {
  let thread: HashThread;
  beforeEach(() => (thread = new HashThread()));
  afterEach(() => thread.close());

  it('matches createHash for chunks of every size, wrapping the ring many times, several hashes at once', async () => {
    const sizes = [1, 65_536, 3, RING_BYTES - 5, 65_536, RING_BYTES + 17, 2 * RING_BYTES, 999];
    const jobs = ['sha256', 'sha512', 'sha256'].map((algorithm) => ({
      algorithm,
      running: thread.start(algorithm),
      expected: createHash(algorithm),
    }));
    const bytes = randomBytes(2 * RING_BYTES + 17);
    for (const [index, size] of sizes.entries()) {
      for (const job of jobs) {
        const chunk = bytes.subarray(index, index + size);
        job.running.update(chunk);
        job.expected.update(chunk);
        if (job.running.backlog > RING_BYTES / 2) await job.running.caughtUp(RING_BYTES / 4);
        expect(job.running.backlog).to.be.at.most(RING_BYTES);
      }
    }
    for (const job of jobs) expect(await job.running.digest()).to.equal(job.expected.digest('hex'));
  });

  it('digests an empty input, and an aborted hash leaves the others intact', async () => {
    const empty = thread.start('sha256');
    const aborted = thread.start('sha256');
    aborted.update(Buffer.from('dropped'));
    aborted.abort();
    expect(await empty.digest()).to.equal(createHash('sha256').digest('hex'));
  });

  it('rejects the digest of an unknown algorithm instead of hanging', async () => {
    const running = thread.start('no-such-hash');
    running.update(Buffer.from('x'));
    const error = await running.digest().then(
      () => undefined,
      (failure: Error) => failure,
    );
    expect(error?.message).to.match(/hashing failed/);
  });
});
