import { expect } from 'chai';
import { ValidationError } from '../../../../src/catalog/errors.js';
import {
  FIELD_OPERATORS,
  LOGICAL_OPERATORS,
  parseFilter,
  parseSort,
} from '../../../../src/catalog/language/query-language.js';
import { parseUpdate } from '../../../../src/catalog/language/update-language.js';

function refusal(run: () => unknown): ValidationError {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(ValidationError);
    return error as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

describe('query language', () => {
  const accepted: Array<[string, Record<string, unknown>]> = [
    ['equality on a field', { container_registry_name: 'a' }],
    ['equality on a nested path', { 'container_registry_metadata.team.lead': 'ana' }],
    ['an embedded document literal', { container_registry_metadata: { env: 'prod' } }],
    [
      'comparisons',
      {
        'container_registry_storage_info.storage_size': {
          $gte: -1,
          $lt: 100,
          $ne: 5,
          $gt: -2,
          $lte: 99,
          $eq: 3,
        },
      },
    ],
    ['$in and $nin', { container_registry_tags: { $in: ['a'], $nin: ['b'] } }],
    [
      '$and, $or, $nor',
      { $and: [{ $or: [{ container_registry_name: 'a' }] }, { $nor: [{ container_registry_tags: 'x' }] }] },
    ],
    ['$not with $regex', { container_registry_name: { $not: { $regex: '^dev' } } }],
    ['$exists', { 'container_registry_metadata.owner': { $exists: false } }],
    ['$regex with $options', { container_registry_name: { $regex: 'ai', $options: 'im' } }],
    ['$all and $size', { container_registry_tags: { $all: ['a', 'b'], $size: 2 } }],
    [
      '$elemMatch on subdocuments',
      { 'container_registry_metadata.owners': { $elemMatch: { name: 'a', age: { $gt: 3 } } } },
    ],
    ['$elemMatch on scalars', { container_registry_tags: { $elemMatch: { $gte: 'a', $lt: 'c' } } }],
  ];
  for (const [what, filter] of accepted) {
    it(`accepts ${what}`, () => {
      expect(parseFilter(filter)).to.deep.equal(filter);
    });
  }

  it('covers exactly the operators of DESIGN.md', () => {
    expect([...LOGICAL_OPERATORS, ...FIELD_OPERATORS].sort()).to.deep.equal(
      '$eq $ne $gt $gte $lt $lte $in $nin $and $or $nor $not $exists $regex $options $all $elemMatch $size'
        .split(' ')
        .sort(),
    );
  });

  it('treats a missing body as "everything"', () => {
    expect(parseFilter(undefined)).to.deep.equal({});
  });

  for (const operator of [
    '$where',
    '$expr',
    '$function',
    '$accumulator',
    '$text',
    '$jsonSchema',
    '$mod',
    '$type',
    '$comment',
  ]) {
    it(`refuses ${operator} at the top and on a field, naming it`, () => {
      expect(refusal(() => parseFilter({ [operator]: 1 })).message).to.include(operator);
      expect(refusal(() => parseFilter({ container_registry_name: { [operator]: 1 } })).message).to.include(
        operator,
      );
    });
  }

  const refused: Array<[string, unknown, string, string]> = [
    ['an unknown field', { owner: 1 }, '/owner', 'not a field'],
    [
      'a dotted path into the tags',
      { 'container_registry_tags.0': 'a' },
      '/container_registry_tags.0',
      'dotted path',
    ],
    [
      'credentials',
      { 'container_registry_config.credentials': { $exists: true } },
      '/container_registry_config.credentials',
      'write-only',
    ],
    [
      'an operator inside a literal',
      { container_registry_metadata: { a: { $gt: 1 } } },
      '/container_registry_metadata/a/$gt',
      '$gt',
    ],
    [
      '$options without $regex',
      { container_registry_name: { $options: 'i' } },
      '/container_registry_name/$options',
      '$regex',
    ],
    [
      'an unknown regex flag',
      { container_registry_name: { $regex: 'a', $options: 'g' } },
      '/container_registry_name/$options',
      'flags',
    ],
    [
      'an invalid regex',
      { container_registry_name: { $regex: '(' } },
      '/container_registry_name/$regex',
      'not a valid',
    ],
    [
      '$size with a negative number',
      { container_registry_tags: { $size: -1 } },
      '/container_registry_tags/$size',
      'non-negative',
    ],
    [
      '$exists with a string',
      { container_registry_tags: { $exists: 'yes' } },
      '/container_registry_tags/$exists',
      'true or false',
    ],
    ['$in with a string', { container_registry_tags: { $in: 'a' } }, '/container_registry_tags/$in', 'array'],
    ['$and with an object', { $and: { a: 1 } }, '/$and', 'non-empty array'],
    ['$nor empty', { $nor: [] }, '/$nor', 'non-empty array'],
    [
      '$or nested below a field',
      { container_registry_name: { $or: [] } },
      '/container_registry_name/$or',
      'top of a filter',
    ],
    ['a field operator at the top', { $in: [1] }, '/$in', 'applied to a field'],
    [
      '$not with a literal',
      { container_registry_name: { $not: 'a' } },
      '/container_registry_name/$not',
      'object of operators',
    ],
    [
      'mixed operators and fields',
      { container_registry_metadata: { $exists: true, a: 1 } },
      '/container_registry_metadata/a',
      'mix',
    ],
  ];
  for (const [what, filter, pointer, message] of refused) {
    it(`refuses ${what} with a pointer`, () => {
      const error = refusal(() => parseFilter(filter));
      expect(error.issues[0]?.pointer).to.equal(pointer);
      expect(error.message).to.include(message);
    });
  }

  it('bounds the number of conditions', () => {
    const or = Array.from({ length: 600 }, (_, i) => ({ container_registry_name: `n${i}` }));
    expect(refusal(() => parseFilter({ $or: or })).message).to.include('more than 512');
  });

  it('parses sort keys and refuses unknown ones', () => {
    expect(parseSort('container_registry_name,-container_registry_metadata.index')).to.deep.equal([
      ['container_registry_name', 1],
      ['container_registry_metadata.index', -1],
    ]);
    expect(refusal(() => parseSort('nope')).issues[0]?.pointer).to.equal('/sort');
  });
});

describe('update language', () => {
  const id = 'b3c38f52-8f2e-43a3-9aa9-bd9a4c75e509';
  it('turns a plain partial object into $set', () => {
    expect(parseUpdate({ container_registry_name: 'x' }, id)).to.deep.equal({
      $set: { container_registry_name: 'x' },
    });
  });
  it('accepts the five operators with dotted paths', () => {
    const update = {
      $set: { 'container_registry_metadata.a.b': 1 },
      $unset: { 'container_registry_storage_info.memory_size': '' },
      $push: { container_registry_tags: { $each: ['a'] } },
      $addToSet: { 'container_registry_metadata.list': 'x' },
      $pull: { 'container_registry_metadata.items': { $gt: 3 } },
    };
    expect(parseUpdate(update, id)).to.deep.equal(update);
  });
  it('allows $set of the id to its own value only', () => {
    expect(() => parseUpdate({ $set: { container_registry_id: id } }, id)).to.not.throw();
    expect(
      refusal(() => parseUpdate({ container_registry_id: '00000000-0000-4000-8000-000000000000' }, id))
        .message,
    ).to.include('immutable');
    expect(refusal(() => parseUpdate({ $unset: { container_registry_id: '' } }, id)).message).to.include(
      'immutable',
    );
  });
  it('refuses $push modifiers other than $each', () => {
    expect(
      refusal(() => parseUpdate({ $push: { container_registry_tags: { $each: ['a'], $slice: 1 } } }, id))
        .message,
    ).to.include('$slice');
  });
  it('allows setting credentials (they are write-only, not read-only)', () => {
    expect(() =>
      parseUpdate({ $set: { 'container_registry_config.credentials.password': 'p' } }, id),
    ).to.not.throw();
  });
});
