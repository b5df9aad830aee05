import { expect } from 'chai';
import { KeyedQueue } from '../../src/catalog/domain/keyed-queue.js';

describe('KeyedQueue', () => {
  it('runs tasks of one key one at a time in arrival order, other keys alongside, and forgets idle keys', async () => {
    const queue = new KeyedQueue();
    const events: string[] = [];
    let running = 0;
    let most = 0;
    const task = (name: string) => async () => {
      running++;
      most = Math.max(most, running);
      events.push(`start ${name}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
      events.push(`end ${name}`);
      running--;
      return name;
    };
    const other = queue.run('b', task('b1'));
    const results = await Promise.all([1, 2, 3].map((n) => queue.run('a', task(`a${n}`))));
    await other;
    expect(results).to.deep.equal(['a1', 'a2', 'a3']);
    const a = events.filter((event) => event.endsWith('a1') || event.endsWith('a2') || event.endsWith('a3'));
    expect(a).to.deep.equal(['start a1', 'end a1', 'start a2', 'end a2', 'start a3', 'end a3']);
    expect(most).to.equal(2); // b ran beside a
    await new Promise((resolve) => setImmediate(resolve));
    expect(queue.size).to.equal(0);
  });

  it('lets the next task run after one fails, and passes the failure to its caller only', async () => {
    const queue = new KeyedQueue();
    const failed = queue.run('a', async () => {
      throw new Error('boom');
    });
    const next = queue.run('a', async () => 'ok');
    expect(await failed.catch((error: Error) => error.message)).to.equal('boom');
    expect(await next).to.equal('ok');
  });
});
