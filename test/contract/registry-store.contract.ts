import { expect } from 'chai';
import type { RegistryStore } from '../../src/catalog/store/registry-store.js';
import type { ContainerRegistry, Filter, SortSpec } from '../../src/catalog/model.js';
import { DuplicateIdError, QueryRejectedError } from '../../src/catalog/store/collection.js';

/**
 * The contract every `RegistryStore` keeps. Run against each implementation by the files beside
 * this one; a behaviour a backend cannot keep is stated there, never skipped silently.
 */

export interface OpenedStore {
  readonly store: RegistryStore;
  cleanup(): Promise<void>;
}

export interface ContractOptions {
  /** Filters the backend refuses although MongoDB answers them: name -> the backend's message. */
  readonly knownFilterDifferences?: Readonly<Record<string, string>>;
  /**
   * The backend cannot keep concurrent compare-and-swap writers from losing updates (why, in a
   * sentence): the concurrency case then asserts that the loss is observed, and says what
   * MongoDB does instead.
   */
  readonly losesConcurrentUpdates?: string;
}

let counter = 0;
function uuid(n: number): string {
  return `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
}

export function registry(n: number, overrides: Partial<ContainerRegistry> = {}): ContainerRegistry {
  return {
    container_registry_id: uuid(n),
    container_registry_name: `registry-${n}`,
    container_registry_metadata: {},
    container_registry_tags: [],
    container_registry_public_url: `http://registry-${n}.example.test:5000`,
    container_registry_image_prefix: '',
    container_registry_config: {},
    container_registry_storage_info: {},
    ...overrides,
  };
}

/** A fixed data set in which each filter below selects a known set of ids. */
const FIXTURE: ContainerRegistry[] = [
  registry(1, {
    container_registry_name: 'alpha',
    container_registry_tags: ['ai', 'gpu'],
    container_registry_metadata: {
      env: 'prod',
      size: 10,
      owners: [
        { name: 'ana', role: 'admin' },
        { name: 'bo', role: 'dev' },
      ],
      scores: [81, 95],
    },
    container_registry_storage_info: { storage_type: 's3', storage_size: -1 },
  }),
  registry(2, {
    container_registry_name: 'beta',
    container_registry_tags: ['ai'],
    container_registry_metadata: {
      env: 'dev',
      size: 20,
      owners: [{ name: 'bo', role: 'admin' }],
      scores: [70, 84],
    },
    container_registry_storage_info: { storage_type: 'fs', storage_size: 1024 },
  }),
  registry(3, {
    container_registry_name: 'Gamma',
    container_registry_tags: ['cpu', 'edge', 'gpu'],
    container_registry_metadata: { env: 'prod', size: 5, owners: [] },
    container_registry_storage_info: { storage_type: 'fs', storage_size: 512 },
  }),
  registry(4, {
    container_registry_name: 'delta',
    container_registry_tags: [],
    container_registry_metadata: { env: null, team: { lead: 'cy' } },
    container_registry_storage_info: {},
  }),
];

/** Filter -> the fixture numbers it selects, as MongoDB answers. */
const FILTERS: Array<[string, Filter, number[]]> = [
  ['equality on a field', { container_registry_name: 'beta' }, [2]],
  ['equality on an array element', { container_registry_tags: 'gpu' }, [1, 3]],
  ['equality on a whole array', { container_registry_tags: ['ai', 'gpu'] }, [1]],
  ['equality on an embedded document', { 'container_registry_metadata.team': { lead: 'cy' } }, [4]],
  ['$eq', { 'container_registry_metadata.env': { $eq: 'prod' } }, [1, 3]],
  ['$ne (also matches missing)', { 'container_registry_metadata.env': { $ne: 'prod' } }, [2, 4]],
  ['$gt/$lt on numbers', { 'container_registry_metadata.size': { $gt: 5, $lt: 20 } }, [1]],
  ['$gte/$lte', { 'container_registry_metadata.size': { $gte: 5, $lte: 20 } }, [1, 2, 3]],
  ['$gt on strings', { container_registry_name: { $gt: 'b' } }, [2, 4]],
  [
    '$lt across types matches only the same type',
    { 'container_registry_storage_info.storage_size': { $lt: 600 } },
    [1, 3],
  ],
  ['$in on an array field', { container_registry_tags: { $in: ['edge', 'nope'] } }, [3]],
  ['$in with null matches missing', { 'container_registry_storage_info.storage_type': { $in: [null] } }, [4]],
  ['$nin', { container_registry_tags: { $nin: ['ai'] } }, [3, 4]],
  [
    '$and',
    { $and: [{ container_registry_tags: 'gpu' }, { 'container_registry_metadata.env': 'prod' }] },
    [1, 3],
  ],
  [
    '$and naming one field twice, and beside a field',
    {
      container_registry_tags: { $size: 2 },
      $and: [{ container_registry_tags: 'gpu' }, { container_registry_tags: 'ai' }],
    },
    [1],
  ],
  [
    '$and holding a $and and two $nor (the inner $and is not dropped)',
    {
      $and: [
        { $nor: [{ container_registry_name: 'delta' }] },
        { $and: [{ container_registry_tags: 'gpu' }] },
        { $nor: [{ container_registry_name: 'Gamma' }] },
      ],
    },
    [1],
  ],
  ['$or', { $or: [{ container_registry_name: 'alpha' }, { container_registry_tags: 'edge' }] }, [1, 3]],
  ['$nor', { $nor: [{ container_registry_tags: 'ai' }, { container_registry_name: 'delta' }] }, [3]],
  ['$not with $regex', { container_registry_name: { $not: { $regex: '^[ab]' } } }, [3, 4]],
  ['$exists true', { 'container_registry_metadata.team': { $exists: true } }, [4]],
  ['$exists false', { 'container_registry_storage_info.storage_type': { $exists: false } }, [4]],
  ['null matches null and missing', { 'container_registry_metadata.env': null }, [4]],
  ['$regex', { container_registry_name: { $regex: 'a$' } }, [1, 2, 3, 4]],
  ['$regex with $options i', { container_registry_name: { $regex: '^g', $options: 'i' } }, [3]],
  ['$regex on array elements', { container_registry_tags: { $regex: '^g' } }, [1, 3]],
  ['$all', { container_registry_tags: { $all: ['gpu', 'ai'] } }, [1]],
  ['$size', { container_registry_tags: { $size: 1 } }, [2]],
  ['$size 0', { container_registry_tags: { $size: 0 } }, [4]],
  [
    '$elemMatch on scalars',
    { 'container_registry_metadata.scores': { $elemMatch: { $gte: 80, $lt: 85 } } },
    [1, 2],
  ],
  [
    '$elemMatch on subdocuments',
    { 'container_registry_metadata.owners': { $elemMatch: { name: 'bo', role: 'admin' } } },
    [2],
  ],
  ['dotted path through an array of subdocuments', { 'container_registry_metadata.owners.name': 'ana' }, [1]],
  ['id equality', { container_registry_id: uuid(3) }, [3]],
  ['id $in', { container_registry_id: { $in: [uuid(2), uuid(4)] } }, [2, 4]],
  [
    'tags and name together',
    { container_registry_tags: { $in: ['ai'] }, container_registry_name: { $in: ['beta', 'Gamma'] } },
    [2],
  ],
];

const SORTS: Array<[string, SortSpec, number[]]> = [
  ['by name ascending (binary, upper case first)', [['container_registry_name', 1]], [3, 1, 2, 4]],
  ['by name descending', [['container_registry_name', -1]], [4, 2, 1, 3]],
  ['by a nested number, missing first', [['container_registry_metadata.size', 1]], [4, 3, 1, 2]],
  ['by a nested number descending, missing last', [['container_registry_metadata.size', -1]], [2, 1, 3, 4]],
  [
    'by an array: smallest element ascending, empty array first',
    [['container_registry_tags', 1]],
    [4, 1, 2, 3],
  ],
  ['by an array: largest element descending', [['container_registry_tags', -1]], [1, 3, 2, 4]],
  [
    'by two keys',
    [
      ['container_registry_metadata.env', 1],
      ['container_registry_name', -1],
    ],
    [4, 2, 1, 3],
  ],
  ['by id descending', [['container_registry_id', -1]], [4, 3, 2, 1]],
];

export function describeRegistryStoreContract(
  name: string,
  open: () => Promise<OpenedStore>,
  options: ContractOptions = {},
): void {
  describe(`RegistryStore contract: ${name}`, function () {
    let opened: OpenedStore;
    let store: RegistryStore;
    beforeEach(async () => {
      opened = await open();
      store = opened.store;
    });
    afterEach(async () => {
      await opened.cleanup();
    });

    const ids = (docs: ContainerRegistry[]) =>
      docs.map((doc) => Number(doc.container_registry_id.slice(-12)));
    const page = { sort: [] as SortSpec, skip: 0, limit: 1000 };

    describe('create, get, replace, delete', () => {
      it('creates at version 1 and reads back the same document', async () => {
        const doc = registry(++counter, {
          container_registry_tags: ['a'],
          container_registry_metadata: { nested: { list: [1, 'x', null, { k: true }] } },
        });
        expect(await store.create(doc)).to.deep.equal({ document: doc, version: 1 });
        expect(await store.get(doc.container_registry_id)).to.deep.equal({ document: doc, version: 1 });
        expect(await store.get(uuid(999_999))).to.equal(undefined);
      });

      it('refuses a duplicate id with DuplicateIdError and keeps the first', async () => {
        const doc = registry(++counter);
        await store.create(doc);
        let error: unknown;
        try {
          await store.create({ ...doc, container_registry_name: 'other' });
        } catch (caught) {
          error = caught;
        }
        expect(error).to.be.instanceOf(DuplicateIdError);
        expect((await store.get(doc.container_registry_id))?.document.container_registry_name).to.equal(
          doc.container_registry_name,
        );
      });

      it('replaces only at the expected version: replaced, conflict, missing', async () => {
        const doc = registry(++counter, { container_registry_tags: ['old'] });
        await store.create(doc);
        const next = { ...doc, container_registry_tags: ['new'] };
        const replaced = await store.replaceIfVersion(next, 1);
        expect(replaced).to.deep.equal({ status: 'replaced', stored: { document: next, version: 2 } });
        expect(await store.replaceIfVersion({ ...doc, container_registry_name: 'stale' }, 1)).to.deep.equal({
          status: 'conflict',
        });
        expect(await store.get(doc.container_registry_id)).to.deep.equal({ document: next, version: 2 });
        expect(await store.find({ container_registry_tags: 'old' }, page)).to.deep.equal([]);
        expect(ids(await store.find({ container_registry_tags: 'new' }, page))).to.deep.equal([counter]);
        expect(await store.replaceIfVersion(registry(999_998), 1)).to.deep.equal({ status: 'missing' });
      });

      it('deletes, and says when there was nothing to delete', async () => {
        const doc = registry(++counter, { container_registry_tags: ['gone'] });
        await store.create(doc);
        expect(await store.delete(doc.container_registry_id)).to.equal(true);
        expect(await store.get(doc.container_registry_id)).to.equal(undefined);
        expect(await store.find({ container_registry_tags: 'gone' }, page)).to.deep.equal([]);
        expect(await store.delete(doc.container_registry_id)).to.equal(false);
      });

      it('answers ping', async () => {
        await store.ping();
      });
    });

    describe('find and count with every allowed operator', () => {
      beforeEach(async () => {
        for (const doc of FIXTURE) await store.create(doc);
      });
      for (const [what, filter, expected] of FILTERS) {
        const difference = options.knownFilterDifferences?.[what];
        if (difference !== undefined) {
          it(`${what}: this backend refuses it (${difference}); MongoDB selects ${JSON.stringify(expected)}`, async () => {
            let error: unknown;
            try {
              await store.find(filter, page);
            } catch (caught) {
              error = caught;
            }
            expect(error).to.be.instanceOf(QueryRejectedError);
            expect((error as Error).message).to.include(difference);
          });
          continue;
        }
        it(what, async () => {
          expect(
            ids(await store.find(filter, { ...page, sort: [['container_registry_id', 1]] })),
          ).to.deep.equal(expected);
          expect(await store.count(filter)).to.equal(expected.length);
        });
      }
      it('an empty filter selects everything', async () => {
        expect(await store.count({})).to.equal(FIXTURE.length);
      });
    });

    describe('sort, skip, limit', () => {
      beforeEach(async () => {
        for (const doc of FIXTURE) await store.create(doc);
      });
      for (const [what, sort, expected] of SORTS) {
        it(what, async () => {
          expect(ids(await store.find({}, { sort, skip: 0, limit: 10 }))).to.deep.equal(expected);
        });
      }
      it('pages with skip and limit in a stable order', async () => {
        const sort: SortSpec = [['container_registry_metadata.env', 1]];
        const all = ids(await store.find({}, { sort, skip: 0, limit: 10 }));
        const pages = [
          ...ids(await store.find({}, { sort, skip: 0, limit: 3 })),
          ...ids(await store.find({}, { sort, skip: 3, limit: 3 })),
        ];
        expect(pages).to.deep.equal(all);
        expect(
          await store.find({ container_registry_tags: 'ai' }, { sort: [], skip: 5, limit: 3 }),
        ).to.deep.equal([]);
        expect(
          ids(
            await store.find(
              { container_registry_tags: { $in: ['ai', 'gpu'] } },
              { sort: [], skip: 1, limit: 1 },
            ),
          ),
        ).to.deep.equal([2]);
      });
    });

    describe('tag queries on many documents', () => {
      it('pages common and rare tags alike', async () => {
        for (let i = 0; i < 60; i++) {
          await store.create(
            registry(10_000 + i, { container_registry_tags: i === 42 ? ['bulk', 'rare'] : ['bulk'] }),
          );
        }
        const sort: SortSpec = [['container_registry_id', 1]];
        expect(await store.count({ container_registry_tags: { $in: ['bulk', 'rare'] } })).to.equal(60);
        expect(
          ids(await store.find({ container_registry_tags: 'bulk' }, { sort, skip: 55, limit: 10 })),
        ).to.deep.equal([10_055, 10_056, 10_057, 10_058, 10_059]);
        expect(
          ids(
            await store.find(
              { container_registry_tags: { $in: ['rare', 'none'] } },
              { sort, skip: 0, limit: 10 },
            ),
          ),
        ).to.deep.equal([10_042]);
        expect(await store.count({ container_registry_tags: 'rare' })).to.equal(1);
        expect(
          ids(
            await store.find(
              { container_registry_tags: 'rare', container_registry_name: 'registry-10042' },
              { sort, skip: 0, limit: 10 },
            ),
          ),
        ).to.deep.equal([10_042]);
      });
    });

    describe('concurrency', () => {
      const writers = 32;
      /** Each writer pushes its own tag with read -> modify -> compare-and-swap, retrying on conflict. */
      async function pushAll(id: string): Promise<string[]> {
        await Promise.all(
          Array.from({ length: writers }, async (_, i) => {
            for (;;) {
              const current = (await store.get(id))!;
              const next = {
                ...current.document,
                container_registry_tags: [...current.document.container_registry_tags, `w${i}`],
              };
              const result = await store.replaceIfVersion(next, current.version);
              if (result.status === 'replaced') return;
              expect(result.status).to.equal('conflict');
              await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
            }
          }),
        );
        return (await store.get(id))!.document.container_registry_tags;
      }
      const expected = Array.from({ length: writers }, (_, i) => `w${i}`).sort();

      const loses = options.losesConcurrentUpdates;
      if (loses === undefined) {
        it(`${writers} concurrent writers lose no update`, async () => {
          const doc = registry(++counter);
          await store.create(doc);
          expect([...(await pushAll(doc.container_registry_id))].sort()).to.deep.equal(expected);
          expect((await store.get(doc.container_registry_id))!.version).to.equal(writers + 1);
        });
      } else {
        // MongoDB keeps all 32 updates here (a conditional replace is atomic there). This backend
        // cannot: the case asserts the loss, so a server that starts keeping them is noticed.
        it(`${writers} concurrent writers: this backend loses updates (${loses}); MongoDB loses none`, async () => {
          let kept = writers;
          for (let round = 0; round < 3 && kept === writers; round++) {
            const doc = registry(++counter);
            await store.create(doc);
            kept = (await pushAll(doc.container_registry_id)).length;
          }
          expect(kept, 'updates kept of the last round').to.be.below(writers);
        });
      }
    });

    describe('bounds', () => {
      it('answers a $in of 1,000 values and a 1,000-clause $or', async () => {
        for (const doc of FIXTURE) await store.create(doc);
        const many = Array.from({ length: 999 }, (_, i) => `v${i}`);
        expect(await store.count({ container_registry_tags: { $in: [...many, 'edge'] } })).to.equal(1);
        const clauses = Array.from({ length: 1000 }, (_, i) => ({ container_registry_name: `n${i}` }));
        expect(await store.count({ $or: [...clauses, { container_registry_name: 'beta' }] })).to.equal(1);
      });
    });
  });
}
