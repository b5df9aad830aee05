import { expect } from 'chai';
import fc from 'fast-check';
import { CatalogError, ValidationError } from '../../src/catalog/errors.js';
import { parseFilter } from '../../src/catalog/language/query-language.js';
import { RegistryService } from '../../src/catalog/domain/registries.js';
import type { ContainerRegistry, Filter } from '../../src/catalog/model.js';
import { SchemaSet } from '../../src/shared/schemas.js';
import { openTestStore, TEST_CIPHER, type TestStore } from '../helpers/catalog.js';
import { usingFerretDb } from '../helpers/mongo-server.js';

/**
 * Property tests of the query and update languages against both stores: any filter the
 * validator accepts runs on the embedded store and on MongoDB (FerretDB here) without an error
 * and selects the same documents; anything it refuses is a ValidationError that names the
 * problem. The same for updates: both stores end with the same document, or both refuse.
 */

const TEAMS = ['core', 'ml', 'web', 'Core', ''];
const TAGS = ['prod', 'dev', 'gpu', 'eu', 'us', 'PROD'];
const NUMBERS = [-1, 0, 0.5, 1, 2, 10, 1e9];

function fixture(): ContainerRegistry[] {
  const docs: ContainerRegistry[] = [];
  for (let n = 0; n < 40; n++) {
    const metadata: Record<string, unknown> = {};
    if (n % 3 !== 0) metadata.team = TEAMS[n % TEAMS.length];
    if (n % 4 !== 1) metadata.size = NUMBERS[n % NUMBERS.length];
    if (n % 5 === 0) metadata.size = String(n); // the same field with another type
    if (n % 6 === 2) metadata.size = null;
    if (n % 2 === 0) metadata.list = TAGS.slice(n % 4, (n % 4) + (n % 3));
    if (n % 7 === 3) metadata.nested = { x: n % 2 === 0 ? 'a' : 1, y: [n, n + 1] };
    if (n % 9 === 4) metadata.flag = n % 2 === 0;
    docs.push({
      container_registry_id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
      container_registry_name: `registry-${n % 8}`,
      container_registry_metadata: metadata,
      container_registry_tags: TAGS.filter((_, i) => (n >> i) % 2 === 1),
      container_registry_public_url: `http://registry-${n}.example.test:${5000 + (n % 3)}`,
      container_registry_image_prefix: n % 2 === 0 ? `team-${n % 4}/` : '',
      container_registry_config: n % 5 === 1 ? { insecure_skip_tls_verify: true } : {},
      container_registry_storage_info: n % 3 === 0 ? { used_bytes: n * 1000 } : {},
    });
  }
  return docs;
}

const FIELDS = [
  'container_registry_id',
  'container_registry_name',
  'container_registry_tags',
  'container_registry_public_url',
  'container_registry_image_prefix',
  'container_registry_metadata.team',
  'container_registry_metadata.size',
  'container_registry_metadata.list',
  'container_registry_metadata.nested.x',
  'container_registry_metadata.nested.y',
  'container_registry_metadata.flag',
  'container_registry_metadata.missing',
  'container_registry_config.insecure_skip_tls_verify',
  'container_registry_storage_info.used_bytes',
];

const scalar = fc.oneof(
  fc.constantFrom(...TEAMS, ...TAGS, 'registry-3', 'a', 'team-2/', '00000000-0000-4000-8000-000000000007'),
  fc.constantFrom(...NUMBERS, 3000, 7000),
  fc.boolean(),
  fc.constant(null),
);
const literal = fc.oneof({ weight: 4, arbitrary: scalar }, fc.array(scalar, { maxLength: 3 }));
const regex = fc.constantFrom(
  '^reg',
  'istry-[1-3]$',
  'PROD',
  'prod|dev',
  '^$',
  'example\\.test:500[01]',
  '[',
);
const operatorCondition: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc
    .record({ op: fc.constantFrom('$eq', '$ne', '$gt', '$gte', '$lt', '$lte'), value: literal })
    .map(({ op, value }) => ({
      [op]: value,
    })),
  fc
    .record({ op: fc.constantFrom('$in', '$nin', '$all'), value: fc.array(literal, { maxLength: 4 }) })
    .map(({ op, value }) => ({ [op]: value })),
  fc.boolean().map((exists) => ({ $exists: exists })),
  fc
    .record({ $regex: regex, $options: fc.constantFrom('', 'i', 'm') })
    .map(({ $regex, $options }) => ($options === '' ? { $regex } : { $regex, $options })),
  fc.nat({ max: 3 }).map((size) => ({ $size: size })),
  fc.record({ op: fc.constantFrom('$eq', '$gt', '$in'), value: scalar }).map(({ op, value }) => ({
    $elemMatch: { [op]: op === '$in' ? [value] : value },
  })),
);
const condition = fc.oneof(
  { weight: 2, arbitrary: literal },
  { weight: 4, arbitrary: operatorCondition },
  operatorCondition.map((inner) => ({ $not: inner })),
  fc.tuple(operatorCondition, operatorCondition).map(([a, b]) => ({ ...a, ...b })),
);
const fieldFilter = fc.dictionary(fc.constantFrom(...FIELDS), condition, { minKeys: 1, maxKeys: 2 });
const filterArb: fc.Arbitrary<Record<string, unknown>> = fc.letrec<{ filter: Record<string, unknown> }>(
  (tie) => ({
    filter: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fieldFilter,
      fc
        .record({
          op: fc.constantFrom('$and', '$or', '$nor'),
          clauses: fc.array(tie('filter'), { minLength: 1, maxLength: 3 }),
        })
        .map(({ op, clauses }) => ({ [op]: clauses })),
    ),
  }),
).filter;

/** Anything JSON, including what the languages refuse. */
const anyJson = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    scalar,
    fc.string({ maxLength: 8 }),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(
      fc.constantFrom(...FIELDS, '$where', '$expr', '$in', '$set', '$or', '$regex', '__proto__', '', 'a.b'),
      tie('value'),
      { maxKeys: 3 },
    ),
  ),
})).value;

const ids = (docs: ContainerRegistry[]) => docs.map((doc) => doc.container_registry_id);

describe('query and update languages, against both stores (property tests)', function () {
  this.timeout(300_000);
  let embedded: TestStore;
  let mongo: TestStore;
  before(async () => {
    embedded = await openTestStore('embedded');
    mongo = await openTestStore('mongo');
    for (const doc of fixture()) {
      await embedded.store.create(structuredClone(doc));
      await mongo.store.create(structuredClone(doc));
    }
  });
  after(async () => {
    await embedded?.cleanup();
    await mongo?.cleanup();
  });

  async function selected(filter: Filter) {
    const page = { sort: [['container_registry_id', 1]] as const, skip: 0, limit: 1000 };
    const [a, b, countA, countB] = await Promise.all([
      embedded.store.find(filter, { ...page, sort: [...page.sort] }),
      mongo.store.find(filter, { ...page, sort: [...page.sort] }),
      embedded.store.count(filter),
      mongo.store.count(filter),
    ]);
    return { embedded: ids(a), mongo: ids(b), countA, countB };
  }

  it('a filter the validator accepts runs on both stores and selects the same documents', async () => {
    let matchedSomething = 0;
    await fc.assert(
      fc.asyncProperty(filterArb, async (body) => {
        let filter: Filter;
        try {
          filter = parseFilter(body);
        } catch (error) {
          // Generated filters can still break a rule (e.g. a bad regex): then it must say which.
          expect(error).to.be.instanceOf(ValidationError);
          expect((error as ValidationError).issues.length).to.be.greaterThan(0);
          return;
        }
        const result = await selected(filter);
        expect(result.mongo, JSON.stringify(body)).to.deep.equal(result.embedded);
        expect([result.countA, result.countB], JSON.stringify(body)).to.deep.equal([
          result.embedded.length,
          result.embedded.length,
        ]);
        if (result.embedded.length > 0) matchedSomething++;
      }),
      { numRuns: 300 },
    );
    // Not a vacuous property: a good share of the filters select something.
    expect(matchedSomething).to.be.greaterThan(50);
  });

  it('any JSON body is either a valid filter that both stores answer alike, or refused with a ValidationError naming where', async () => {
    await fc.assert(
      fc.asyncProperty(anyJson, async (body) => {
        let filter: Filter;
        try {
          filter = parseFilter(body);
        } catch (error) {
          expect(error).to.be.instanceOf(ValidationError);
          const { message, issues } = error as ValidationError;
          expect(message).to.match(/^Invalid filter/);
          expect(issues[0]!.pointer).to.match(/^(\/|$)/);
          return;
        }
        const result = await selected(filter);
        expect(result.mongo, JSON.stringify(body)).to.deep.equal(result.embedded);
      }),
      { numRuns: 300 },
    );
  });

  // FerretDB 1.24 cannot store nested arrays (README); MongoDB and the embedded store can. Such
  // updates are covered by their own test; here both stores must be able to hold the result.
  const nestsArrays = (value: unknown, inArray = false): boolean =>
    Array.isArray(value)
      ? inArray || value.some((item) => nestsArrays(item, true))
      : typeof value === 'object' && value !== null && Object.values(value).some((item) => nestsArrays(item));
  const updateArb = fc
    .oneof(
      fc
        .dictionary(fc.constantFrom(...FIELDS.slice(1)), anyJson, { minKeys: 1, maxKeys: 2 })
        .map(($set) => ({ $set })),
      fc
        .dictionary(fc.constantFrom(...FIELDS.slice(5)), fc.constant(''), { minKeys: 1, maxKeys: 2 })
        .map(($unset) => ({
          $unset,
        })),
      fc
        .record({
          op: fc.constantFrom('$push', '$addToSet', '$pull'),
          path: fc.constantFrom(
            'container_registry_tags',
            'container_registry_metadata.list',
            'container_registry_metadata.team',
          ),
          value: fc.oneof(scalar, fc.record({ $each: fc.array(scalar, { maxLength: 3 }) })),
        })
        .map(({ op, path, value }) => ({ [op]: { [path]: value } })),
      anyJson,
    )
    .filter((update) => !nestsArrays(update));

  it('an update either gives the same document on both stores or is refused alike, and a refused one changes nothing', async () => {
    const services = [embedded, mongo].map(
      ({ store }) => new RegistryService({ store, schemas: new SchemaSet(), cipher: TEST_CIPHER }),
    );
    let applied = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: 39 }), updateArb, async (n, update) => {
        const id = `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
        const before = await Promise.all([embedded, mongo].map(({ store }) => store.get(id)));
        const outcomes = await Promise.all(
          services.map((service) =>
            service.update(id, structuredClone(update)).then(
              (stored) => ({ ok: true as const, document: stored.document }),
              (error: unknown) => {
                if (!(error instanceof CatalogError)) throw error;
                return { ok: false as const, message: error.message };
              },
            ),
          ),
        );
        expect(outcomes[1], `${JSON.stringify(update)}: ${JSON.stringify(outcomes)}`).to.deep.equal(
          outcomes[0],
        );
        if (outcomes[0]!.ok) {
          applied++;
          return;
        }
        const after = await Promise.all([embedded, mongo].map(({ store }) => store.get(id)));
        expect(after).to.deep.equal(before);
      }),
      { numRuns: 300 },
    );
    expect(applied).to.be.greaterThan(30);
  });

  it('a document FerretDB cannot store (nested arrays) is a 400-class ValidationError there, not a server error', async () => {
    const id = '00000000-0000-4000-8000-000000000001';
    const update = { $set: { 'container_registry_metadata.matrix': [[1, 2], [3]] } };
    const service = (store: TestStore) =>
      new RegistryService({ store: store.store, schemas: new SchemaSet(), cipher: TEST_CIPHER });
    const stored = await service(embedded).update(id, update);
    expect(stored.document.container_registry_metadata.matrix).to.deep.equal([[1, 2], [3]]);
    const before = await mongo.store.get(id);
    const outcome = await service(mongo)
      .update(id, update)
      .then(
        () => 'stored',
        (error: unknown) => error,
      );
    if (usingFerretDb()) {
      expect(outcome).to.be.instanceOf(ValidationError);
      expect((outcome as Error).message).to.match(
        /^Invalid document: the database cannot store this document: .*nested arrays/,
      );
      expect(await mongo.store.get(id)).to.deep.equal(before);
    } else {
      expect(outcome).to.equal('stored'); // MongoDB stores nested arrays
    }
  });
});
