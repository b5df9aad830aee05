import { expect } from 'chai';
import {
  applyUpdate,
  applyUpdateSliced,
  UpdateBudgetError,
} from '../../../../src/catalog/language/mongo-semantics.js';

const LIST = Array.from({ length: 1000 }, (_, i) => `item-${String(i).padStart(4, '0')}-${'a'.repeat(500)}`);
const base = () => ({ meta: { list: [...LIST], objs: [{ a: 1, b: 2 }, { a: 3 }] } });

describe('update operators in slices (issue 10)', () => {
  const updates = [
    { $pull: { 'meta.list': { $regex: '^item-00[0-4]' } } },
    { $pull: { 'meta.list': LIST[7] } },
    { $pull: { 'meta.list': { $in: [LIST[1], LIST[2], 'none'] } } },
    { $pull: { 'meta.objs': { a: { $gte: 2 } } } },
    { $pull: { 'meta.missing': 'x' } },
    { $addToSet: { 'meta.list': { $each: [LIST[0], 'new', 'new'] } } },
    { $addToSet: { 'meta.objs': { b: 2, a: 1 } } }, // another key order: a different value in BSON
    { $push: { 'meta.list': 'pushed' } },
    { $set: { 'meta.note': 'x' } },
  ];
  for (const update of updates) {
    it(`gives the same document as in one piece: ${JSON.stringify(update).slice(0, 70)}`, async () => {
      expect(await applyUpdateSliced(base(), update)).to.deep.equal(applyUpdate(base(), update));
    });
  }

  it('yields to the event loop during a long $pull', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      await applyUpdateSliced(
        base(),
        { $pull: { 'meta.list': { $regex: 'b$' } } },
        { sliceMs: 0, maxMs: 60_000 },
      );
    } finally {
      clearInterval(timer);
    }
    expect(ticks).to.be.greaterThan(0);
  });

  it('stops past its work budget with UpdateBudgetError, leaving the document as it was', async () => {
    const document = base();
    const error = await applyUpdateSliced(
      document,
      { $pull: { 'meta.list': { $regex: 'b$' } } },
      { sliceMs: 0, maxMs: 0.001 },
    ).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(UpdateBudgetError);
    expect(document).to.deep.equal(base());
  });
});
