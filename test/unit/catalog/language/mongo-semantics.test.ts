import { expect } from 'chai';
import {
  applyUpdate,
  sortDocuments,
  compileFilter,
  InvalidUpdateError,
} from '../../../../src/catalog/language/mongo-semantics.js';
import type { Update } from '../../../../src/catalog/language/update-language.js';

/**
 * Each case states what MongoDB does (its documented behaviour for the operator) and checks
 * that our wrapper around mingo does the same. The cases where mingo alone differs from MongoDB
 * are marked "mingo alone differs".
 */

type Doc = Record<string, unknown>;
const base = (): Doc => ({
  a: 1,
  s: 'str',
  list: [1, 2, 3],
  objs: [{ k: 1, v: 'x' }],
  nested: { b: { c: 1 } },
});

const updates: Array<[string, Update, Doc]> = [
  ['$set a top-level field', { $set: { a: 2 } }, { ...base(), a: 2 }],
  ['$set a new field', { $set: { z: true } }, { ...base(), z: true }],
  ['$set a nested path', { $set: { 'nested.b.c': 5 } }, { ...base(), nested: { b: { c: 5 } } }],
  [
    '$set creates missing intermediate objects',
    { $set: { 'new.deep.x': 1 } },
    { ...base(), new: { deep: { x: 1 } } },
  ],
  ['$set an array element by index', { $set: { 'list.1': 9 } }, { ...base(), list: [1, 9, 3] }],
  [
    '$set a field inside an array element',
    { $set: { 'objs.0.v': 'y' } },
    { ...base(), objs: [{ k: 1, v: 'y' }] },
  ],
  ['$set a whole object replaces it', { $set: { nested: { q: 1 } } }, { ...base(), nested: { q: 1 } }],
  ['$unset a field', { $unset: { a: '' } }, (({ a: _a, ...rest }) => rest)(base())],
  ['$unset a nested field', { $unset: { 'nested.b.c': '' } }, { ...base(), nested: { b: {} } }],
  ['$unset a missing field is a no-op', { $unset: { missing: '' } }, base()],
  ['$unset through a scalar is a no-op', { $unset: { 's.x': '' } }, base()],
  ['$push a value', { $push: { list: 4 } }, { ...base(), list: [1, 2, 3, 4] }],
  ['$push creates a missing array', { $push: { fresh: 'x' } }, { ...base(), fresh: ['x'] }],
  [
    '$push an array pushes it as one element',
    { $push: { list: [7, 8] } },
    { ...base(), list: [1, 2, 3, [7, 8]] },
  ],
  ['$push with $each', { $push: { list: { $each: [7, 8] } } }, { ...base(), list: [1, 2, 3, 7, 8] }],
  ['$push a duplicate keeps it', { $push: { list: 1 } }, { ...base(), list: [1, 2, 3, 1] }],
  ['$addToSet a new value', { $addToSet: { list: 4 } }, { ...base(), list: [1, 2, 3, 4] }],
  ['$addToSet an existing value is a no-op', { $addToSet: { list: 2 } }, base()],
  [
    '$addToSet with $each skips existing values',
    { $addToSet: { list: { $each: [3, 4, 4] } } },
    { ...base(), list: [1, 2, 3, 4] },
  ],
  ['$addToSet creates a missing array', { $addToSet: { fresh: 1 } }, { ...base(), fresh: [1] }],
  ['$addToSet an equal document is a no-op', { $addToSet: { objs: { k: 1, v: 'x' } } }, base()],
  [
    '$addToSet a document with other key order adds it (mingo alone differs)',
    { $addToSet: { objs: { v: 'x', k: 1 } } },
    {
      ...base(),
      objs: [
        { k: 1, v: 'x' },
        { v: 'x', k: 1 },
      ],
    },
  ],
  ['$pull a value', { $pull: { list: 2 } }, { ...base(), list: [1, 3] }],
  ['$pull with a condition', { $pull: { list: { $gte: 2 } } }, { ...base(), list: [1] }],
  ['$pull with $in', { $pull: { list: { $in: [1, 3] } } }, { ...base(), list: [2] }],
  ['$pull documents matching a query', { $pull: { objs: { k: 1 } } }, { ...base(), objs: [] }],
  ['$pull from a missing field is a no-op', { $pull: { missing: 1 } }, base()],
  [
    'several operators at once',
    { $set: { a: 3 }, $push: { list: 4 }, $unset: { s: '' } },
    (({ s: _s, ...rest }) => ({ ...rest, a: 3, list: [1, 2, 3, 4] }))(base()),
  ],
];

const refusals: Array<[string, Update, RegExp]> = [
  ['$push to a string (mingo alone differs)', { $push: { s: 1 } }, /must be an array but is of type string/],
  [
    '$push to an object (mingo alone differs)',
    { $push: { nested: 1 } },
    /must be an array but is of type object/,
  ],
  ['$push to a number (mingo alone differs)', { $push: { a: 1 } }, /must be an array but is of type number/],
  ['$addToSet to a string (mingo alone differs)', { $addToSet: { s: 1 } }, /must be an array/],
  ['$pull from a string (mingo alone differs)', { $pull: { s: 's' } }, /must be an array/],
  ['$set through a string (mingo alone differs)', { $set: { 's.x': 1 } }, /"s" is not an object/],
  ['$set through a number', { $set: { 'a.b.c': 1 } }, /"a" is not an object/],
  ['$set a named field of an array', { $set: { 'list.x': 1 } }, /"list" is not an object/],
  ['$push through a string', { $push: { 's.x': 1 } }, /"s" is not an object/],
];

describe('MongoDB semantics of updates', () => {
  for (const [what, update, expected] of updates) {
    it(what, () => {
      const original = base();
      expect(applyUpdate(original, update)).to.deep.equal(expected);
      expect(original, 'the input is not modified').to.deep.equal(base());
    });
  }
  for (const [what, update, message] of refusals) {
    it(`refuses ${what}`, () => {
      expect(() => applyUpdate(base(), update)).to.throw(InvalidUpdateError, message);
    });
  }
  it('keeps key order of $addToSet documents as given', () => {
    const result = applyUpdate({ objs: [] }, { $addToSet: { objs: { b: 1, a: 2 } } });
    expect(Object.keys((result.objs as Doc[])[0]!)).to.deep.equal(['b', 'a']);
  });
});

describe('MongoDB semantics of filters', () => {
  const docs: Doc[] = [
    { _n: 1, tags: ['a', 'b'], n: 5, o: { x: 1 } },
    { _n: 2, tags: [], n: null },
    { _n: 3, tags: ['c'], n: '5' },
  ];
  const select = (filter: Doc) => docs.filter(compileFilter(filter)).map((doc) => doc._n);
  const cases: Array<[string, Doc, number[]]> = [
    ['equality matches an array element', { tags: 'a' }, [1]],
    ['null matches null and missing fields', { o: null }, [2, 3]],
    ['comparison does not cross types', { n: { $gte: 0 } }, [1]],
    ['$size 0 matches an empty array', { tags: { $size: 0 } }, [2]],
    ['$exists false matches missing only', { o: { $exists: false } }, [2, 3]],
    ['$ne matches missing fields', { 'o.x': { $ne: 1 } }, [2, 3]],
    ['$nin matches missing fields', { 'o.x': { $nin: [1] } }, [2, 3]],
    ['$all with one value', { tags: { $all: ['b'] } }, [1]],
    ['$in matches an array element', { tags: { $in: ['c', 'z'] } }, [3]],
    ['$regex on array elements', { tags: { $regex: '^[bc]$' } }, [1, 3]],
    ['$not inverts and includes missing', { 'o.x': { $not: { $gt: 0 } } }, [2, 3]],
    ['an empty filter matches everything', {}, [1, 2, 3]],
    // Found by the property test against FerretDB (test/contract/language-properties.test.ts):
    [
      '$in with an array value matches a field equal to it (mingo alone differs)',
      { tags: { $in: [[]] } },
      [2],
    ],
    [
      '$nin with an array value excludes a field equal to it (mingo alone differs)',
      { tags: { $nin: [['a', 'b']] } },
      [2, 3],
    ],
    ['$all matches a scalar field equal to its value (mingo alone differs)', { n: { $all: [5] } }, [1]],
    ['$all [null] matches null and missing fields (mingo alone differs)', { o: { $all: [null] } }, [2, 3]],
    ['$all [] matches nothing', { tags: { $all: [] } }, []],
    ['$not over $all', { tags: { $not: { $all: ['a'] } } }, [2, 3]],
  ];
  for (const [what, filter, expected] of cases) {
    it(what, () => {
      expect(select(filter)).to.deep.equal(expected);
    });
  }
});

describe('MongoDB sort order', () => {
  const sortIds = (docs: Doc[], path: string, direction: 1 | -1) =>
    sortDocuments(
      docs.map((doc, i) => ({ container_registry_id: String(i), ...doc })),
      [[path, direction]],
      'container_registry_id',
    ).map((doc) => (doc as Doc).v ?? doc.container_registry_id);
  it('orders types null < numbers < strings < objects < arrays < booleans', () => {
    const docs = [
      { k: true, v: 'bool' },
      { k: 'a', v: 'str' },
      { k: 1, v: 'num' },
      { k: null, v: 'null' },
      { k: { a: 1 }, v: 'obj' },
      { v: 'missing' },
    ];
    expect(sortIds(docs, 'k', 1)).to.deep.equal(['null', 'missing', 'num', 'str', 'obj', 'bool']);
  });
  it('sorts arrays by their smallest element ascending and their largest descending (mingo alone differs)', () => {
    const docs = [
      { k: [1, 9], v: 'a' },
      { k: [3, 4], v: 'b' },
      { k: 2, v: 'c' },
    ];
    expect(sortIds(docs, 'k', 1)).to.deep.equal(['a', 'c', 'b']);
    expect(sortIds(docs, 'k', -1)).to.deep.equal(['a', 'b', 'c']);
  });
  it('puts an empty array before null and missing', () => {
    const docs = [
      { k: null, v: 'null' },
      { k: [], v: 'empty' },
      { k: [0], v: 'zero' },
    ];
    expect(sortIds(docs, 'k', 1)).to.deep.equal(['empty', 'null', 'zero']);
  });
  it('compares strings by code point, upper case before lower case', () => {
    expect(
      sortIds(
        [
          { k: 'b', v: 'b' },
          { k: 'B', v: 'B' },
          { k: 'a', v: 'a' },
        ],
        'k',
        1,
      ),
    ).to.deep.equal(['B', 'a', 'b']);
  });
  it('compares documents field by field', () => {
    const docs = [
      { k: { a: 2 }, v: 'a2' },
      { k: { a: 1, b: 1 }, v: 'a1b1' },
      { k: { a: 1 }, v: 'a1' },
    ];
    expect(sortIds(docs, 'k', 1)).to.deep.equal(['a1', 'a1b1', 'a2']);
  });
  it('breaks ties by id so pages are stable', () => {
    const docs = [{ k: 1 }, { k: 1 }, { k: 0 }];
    expect(sortIds(docs, 'k', 1)).to.deep.equal(['2', '0', '1']);
  });
});
