import { expect } from 'chai';
import { pino } from 'pino';
import { EventQueue, type SendOutcome } from '../../../src/oci/registration/event-queue.js';

const logger = pino({ level: 'silent' });
const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
};

describe('registry event queue (self-registration)', () => {
  it('holds events until resumed, then sends them in order, in batches', async () => {
    const batches: number[][] = [];
    const queue = new EventQueue<number>({
      capacity: 100,
      batchSize: 4,
      logger,
      send: async (batch) => {
        batches.push([...batch]);
        return 'sent';
      },
    });
    for (let i = 0; i < 10; i++) queue.push(i);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(batches).to.deep.equal([]);
    queue.resume();
    await until(() => queue.length === 0);
    expect(batches).to.deep.equal([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, 9],
    ]);
    await queue.stop(10);
  });

  it('drops the oldest when full and counts them; push never waits', () => {
    const drops: Array<[number, string]> = [];
    const queue = new EventQueue<number>({
      capacity: 3,
      batchSize: 10,
      logger,
      send: () => new Promise<SendOutcome>(() => {}), // a catalog that never answers
      onDrop: (count, why) => drops.push([count, why]),
    });
    // push is synchronous (no promise to wait for) whatever the catalog does; speed is in bench/register.
    for (let i = 0; i < 1000; i++) expect(queue.push(i)).to.equal(undefined);
    expect(queue.length).to.equal(3);
    expect(queue.dropped).to.equal(997);
    expect(drops[0]).to.deep.equal([1, 'full']);
  });

  it('retries a failed batch with backoff and keeps order; drops a refused batch', async () => {
    const seen: number[][] = [];
    let failures = 2;
    const dropped: string[] = [];
    const queue = new EventQueue<number>({
      capacity: 100,
      batchSize: 2,
      logger,
      initialBackoffMs: 5,
      onDrop: (_count, why) => dropped.push(why),
      send: async (batch) => {
        seen.push([...batch]);
        if (batch[0] === 0 && failures-- > 0) throw new Error('catalog down');
        return batch[0] === 2 ? 'drop' : 'sent';
      },
    });
    queue.resume();
    for (let i = 0; i < 5; i++) queue.push(i);
    await until(() => queue.length === 0);
    expect(seen.map((batch) => batch[0])).to.deep.equal([0, 0, 0, 2, 4]);
    expect(dropped).to.deep.equal(['refused']);
    await queue.stop(10);
  });
});
