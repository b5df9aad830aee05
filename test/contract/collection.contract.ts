import { expect } from 'chai';
import {
  DuplicateIdError,
  type Collection,
  type CollectionSpec,
  type DocumentDatabase,
} from '../../src/catalog/store/collection.js';

/**
 * The contract of the generic collection seam (src/catalog/store/collection.ts) on a kind of
 * document that is not a registry: its own id field, a string column, a number column and a
 * multi-valued index. The registry and health repositories have their own suites on top.
 */
interface Item {
  key: string;
  group: string;
  rank: number;
  labels: string[];
  note?: unknown;
}

const SPEC: CollectionSpec = {
  idField: 'key',
  indexes: [
    { field: 'group', kind: 'column', column: 'item_group' },
    { field: 'rank', kind: 'column', column: 'item_rank' },
    { field: 'labels', kind: 'multi', table: 'item_labels', column: 'label' },
  ],
};

const item = (n: number, overrides: Partial<Item> = {}): Item => ({
  key: `item-${String(n).padStart(3, '0')}`,
  group: n % 2 === 0 ? 'even' : 'odd',
  rank: n,
  labels: n % 3 === 0 ? ['three', 'any'] : ['any'],
  ...overrides,
});

export function describeCollectionContract(
  name: string,
  open: () => Promise<{ database: DocumentDatabase; cleanup(): Promise<void> }>,
): void {
  describe(`Collection contract: ${name}`, () => {
    let items: Collection<Item>;
    let cleanup: () => Promise<void>;
    beforeEach(async () => {
      const opened = await open();
      cleanup = opened.cleanup;
      items = await opened.database.collection<Item>('contract_items', SPEC);
    });
    afterEach(async () => {
      await cleanup();
    });

    it('keys documents by the declared id field, with versions and compare-and-swap', async () => {
      expect(await items.create(item(1))).to.deep.equal({ document: item(1), version: 1 });
      const error = await items.create(item(1, { group: 'other' })).catch((e: unknown) => e);
      expect(error).to.be.instanceOf(DuplicateIdError);
      expect((await items.get('item-001'))?.document).to.deep.equal(item(1));
      const moved = item(1, { group: 'moved', labels: ['new'] });
      expect((await items.replaceIfVersion(moved, 2)).status).to.equal('conflict');
      expect((await items.replaceIfVersion(moved, 1)).status).to.equal('replaced');
      expect(await items.get('item-001')).to.deep.equal({ document: moved, version: 2 });
      expect((await items.replaceIfVersion(item(9), 1)).status).to.equal('missing');
      expect(await items.delete('item-001')).to.equal(true);
      expect(await items.delete('item-001')).to.equal(false);
      expect(await items.get('item-001')).to.equal(undefined);
    });

    it('creates many in one batch, skipping ids that exist, and deletes by filter', async () => {
      await items.create(item(2));
      const created = await items.createMany([item(1), item(2), item(3)]);
      expect([...created].sort()).to.deep.equal(['item-001', 'item-003']);
      expect(await items.count({})).to.equal(3);
      await items.deleteMany({ rank: { $lt: 3 } });
      expect((await items.find({}, { sort: [], skip: 0, limit: 10 })).map((i) => i.key)).to.deep.equal([
        'item-003',
      ]);
      expect(await items.createMany([])).to.have.property('size', 0);
    });

    it('reads and replaces many at their versions, reporting which moved on or were gone', async () => {
      await items.createMany([item(1), item(2), item(3)]);
      const current = await items.getMany(['item-001', 'item-002', 'item-404', 'item-003']);
      expect([...current.keys()].sort()).to.deep.equal(['item-001', 'item-002', 'item-003']);
      expect(current.get('item-002')).to.deep.equal({ document: item(2), version: 1 });
      await items.replaceIfVersion(item(2, { group: 'elsewhere' }), 1); // another writer
      await items.delete('item-003');
      const replaced = await items.replaceManyIfVersion(
        ['item-001', 'item-002', 'item-003'].map((key) => ({
          document: { ...current.get(key)!.document, group: 'moved', labels: ['new'] },
          version: 1,
        })),
      );
      expect([...replaced]).to.deep.equal(['item-001']);
      expect(await items.get('item-001')).to.deep.equal({
        document: item(1, { group: 'moved', labels: ['new'] }),
        version: 2,
      });
      expect((await items.get('item-002'))?.document.group).to.equal('elsewhere');
      expect(await items.count({ labels: 'new' })).to.equal(1);
      expect(await items.replaceManyIfVersion([])).to.have.property('size', 0);
    });

    it('answers filters on indexed and other fields alike, and follows replaced index values', async () => {
      await items.createMany(Array.from({ length: 30 }, (_, i) => item(i + 1)));
      const keys = async (filter: Record<string, unknown>) =>
        (await items.find(filter, { sort: [['key', 1]], skip: 0, limit: 100 })).map((i) => i.key);
      expect(await keys({ labels: 'three' })).to.have.length(10);
      expect(await items.count({ labels: { $in: ['three'] } })).to.equal(10);
      expect(await keys({ group: 'even', labels: 'three' })).to.deep.equal(
        ['006', '012', '018', '024', '030'].map((n) => `item-${n}`),
      );
      expect(await keys({ rank: { $gte: 28 } })).to.deep.equal(['item-028', 'item-029', 'item-030']);
      expect(await keys({ key: { $in: ['item-002', 'item-404'] } })).to.deep.equal(['item-002']);
      expect(await items.count({ group: 'odd', rank: { $lt: 5 } })).to.equal(2);
      const current = (await items.get('item-003'))!;
      await items.replaceIfVersion(
        { ...current.document, labels: ['gone'], group: 'moved' },
        current.version,
      );
      expect(await items.count({ labels: 'three' })).to.equal(9);
      expect(await keys({ group: 'moved' })).to.deep.equal(['item-003']);
      const page = await items.find({ labels: 'any' }, { sort: [['rank', -1]], skip: 2, limit: 3 });
      expect(page.map((i) => i.rank)).to.deep.equal([28, 27, 26]);
    });

    it('pages by an indexed field in MongoDB order (numbers before strings, ties by id), as a sort in process would', async () => {
      const groups = ['b', 'a', 'B', 'é', 'a', 'ab', 'z', '10', '9', 'a'];
      await items.createMany(groups.map((group, i) => item(i + 1, { group })));
      await items.create(item(20, { group: 7 as unknown as string }));
      const page = async (sort: Array<[string, 1 | -1]>, skip: number, limit: number, filter = {}) =>
        (await items.find(filter, { sort, skip, limit })).map((i) => `${String(i.group)}:${i.rank}`);
      const ascending = ['7:20', '10:8', '9:9', 'B:3', 'a:2', 'a:5', 'a:10', 'ab:6', 'b:1', 'z:7', 'é:4'];
      expect(await page([['group', 1]], 0, 100)).to.deep.equal(ascending);
      expect(await page([['group', 1]], 4, 3)).to.deep.equal(ascending.slice(4, 7));
      expect(await page([['group', -1]], 0, 4)).to.deep.equal(['é:4', 'z:7', 'b:1', 'ab:6']);
      expect(
        await page(
          [
            ['group', -1],
            ['key', -1],
          ],
          4,
          3,
        ),
      ).to.deep.equal(['a:10', 'a:5', 'a:2']);
      expect(await page([['group', 1]], 0, 100, { labels: 'three' })).to.deep.equal(['9:9', 'B:3', 'ab:6']);
      // A document whose value the column cannot hold (an array) still sorts as MongoDB does.
      await items.create(item(21, { group: ['x'] as unknown as string }));
      expect((await page([['group', 1]], 0, 100)).length).to.equal(12);
    });

    it('pages in id order through a prefix matching most documents as through one matching few', async () => {
      // 300 documents, 100 of them in `team-a/`: on SQLite a page of the common prefix walks the
      // id index (walksIdOrder), one of a rare prefix sorts the ids of its matches.
      await items.createMany(
        Array.from({ length: 300 }, (_, i) =>
          item(i, { group: i % 3 === 0 ? `team-a/${i % 7}` : `team-b/${i}` }),
        ),
      );
      const all = Array.from({ length: 300 }, (_, i) => i).map((i) => item(i));
      const expect_ = (test: (i: number) => boolean, descending: boolean, skip: number, limit: number) => {
        const keys = all.map((d) => d.key).filter((_, i) => test(i));
        return (descending ? keys.reverse() : keys).slice(skip, skip + limit);
      };
      for (const [descending, skip, limit] of [
        [false, 0, 10],
        [false, 40, 20],
        [true, 5, 10],
        [false, 95, 10],
      ] as const) {
        const sort: Array<[string, 1 | -1]> = [['key', descending ? -1 : 1]];
        const common = await items.findPage({ group: { $regex: '^team-a/' } }, { sort, skip, limit });
        expect(common.items.map((i) => i.key)).to.deep.equal(
          expect_((i) => i % 3 === 0, descending, skip, limit),
        );
        expect(common.total).to.equal(100);
        const found = await items.find({ group: { $regex: '^team-a/' } }, { sort, skip, limit });
        expect(found.map((i) => i.key)).to.deep.equal(common.items.map((i) => i.key));
        const rare = await items.find({ group: { $in: ['team-a/3', 'team-b/1'] } }, { sort, skip: 0, limit });
        expect(rare.map((i) => i.key)).to.deep.equal(
          expect_((i) => (i % 3 === 0 && i % 7 === 3) || i === 1, descending, 0, limit),
        );
      }
    });

    it('counts follow every kind of write, asked again with the same filter between them', async () => {
      const counts = async () =>
        Promise.all([
          items.count({}),
          items.count({ group: 'even' }),
          items.count({ labels: 'three' }),
          items.count({ group: { $regex: '^ev' } }),
          items.count({ group: 'even', labels: 'any' }),
        ]);
      expect(await counts()).to.deep.equal([0, 0, 0, 0, 0]);
      await items.create(item(6));
      expect(await counts()).to.deep.equal([1, 1, 1, 1, 1]);
      await items.createMany([item(1), item(2), item(3)]);
      expect(await counts()).to.deep.equal([4, 2, 2, 2, 2]);
      const six = (await items.get('item-006'))!;
      await items.replaceIfVersion({ ...six.document, group: 'odd', labels: [] }, six.version);
      expect(await counts()).to.deep.equal([4, 1, 1, 1, 1]);
      const two = (await items.getMany(['item-002'])).get('item-002')!;
      await items.replaceManyIfVersion([
        { document: { ...two.document, labels: ['three'] }, version: two.version },
      ]);
      expect(await counts()).to.deep.equal([4, 1, 2, 1, 0]);
      await items.delete('item-003');
      expect(await counts()).to.deep.equal([3, 1, 1, 1, 0]);
      await items.deleteMany({ group: 'even' });
      expect(await counts()).to.deep.equal([2, 0, 0, 0, 0]);
    });

    it('reads stored texts of many ids, as getText reads one', async () => {
      await items.createMany([item(1), item(2)]);
      const texts = await items.getTexts(['item-002', 'item-404', 'item-001']);
      expect([...texts.keys()].sort()).to.deep.equal(['item-001', 'item-002']);
      for (const key of ['item-001', 'item-002']) {
        expect(texts.get(key)).to.deep.equal(await items.getText(key));
        expect(JSON.parse(texts.get(key)!.text)).to.deep.include(item(Number(key.slice(-3))));
      }
      expect(await items.getTexts([])).to.have.property('size', 0);
    });

    it('texts read by id follow every kind of write, asked again for the same ids between them', async () => {
      const ids = ['item-001', 'item-002', 'item-003'];
      const groups = async () =>
        Object.fromEntries(
          [...(await items.getTexts(ids))].map(([id, { text, version }]) => [
            id,
            `${(JSON.parse(text) as { group: string }).group}@${version}`,
          ]),
        );
      expect(await groups()).to.deep.equal({});
      await items.create(item(1));
      expect(await groups()).to.deep.equal({ 'item-001': 'odd@1' });
      await items.createMany([item(2), item(3)]);
      expect(await groups()).to.deep.equal({
        'item-001': 'odd@1',
        'item-002': 'even@1',
        'item-003': 'odd@1',
      });
      const one = (await items.get('item-001'))!;
      await items.replaceIfVersion({ ...one.document, group: 'first' }, one.version);
      expect(await groups()).to.include({ 'item-001': 'first@2' });
      const two = (await items.getMany(['item-002'])).get('item-002')!;
      await items.replaceManyIfVersion([
        { document: { ...two.document, group: 'second' }, version: two.version },
      ]);
      expect(await groups()).to.include({ 'item-002': 'second@2' });
      await items.delete('item-003');
      expect(await groups()).to.deep.equal({ 'item-001': 'first@2', 'item-002': 'second@2' });
      await items.deleteMany({ group: 'second' });
      expect(await groups()).to.deep.equal({ 'item-001': 'first@2' });
      expect((await items.getMany(ids)).get('item-001')?.document).to.include({ group: 'first' });
    });

    it('answers prefix regexes on indexed fields (a range scan on SQLite) as MongoDB does', async () => {
      const groups = ['team-a/api', 'team-a/web', 'team-ab/x', 'team-a', 'team-b/a', 'Team-a/up', 'team-a0'];
      await items.createMany(
        groups.map((group, i) => item(i + 1, { group, labels: [group, i % 2 ? 'x/odd' : 'x/even'] })),
      );
      const keys = async (filter: Record<string, unknown>) =>
        (await items.find(filter, { sort: [['key', 1]], skip: 0, limit: 100 })).map((i) => i.group);
      expect(await keys({ group: { $regex: '^team-a/' } })).to.deep.equal(['team-a/api', 'team-a/web']);
      expect(await items.count({ group: { $regex: '^team-a/' } })).to.equal(2);
      expect(await keys({ group: { $regex: '^team-a/.*' } })).to.deep.equal(['team-a/api', 'team-a/web']);
      expect(await keys({ group: { $regex: '^team-a/w' } })).to.deep.equal(['team-a/web']);
      // Narrowed by the prefix, decided by the rest.
      expect(await keys({ group: { $regex: '^team-a.?/a' } })).to.deep.equal(['team-a/api']);
      expect(await keys({ group: { $regex: '^team-a/', $options: 'i' } })).to.deep.equal([
        'team-a/api',
        'team-a/web',
        'Team-a/up',
      ]);
      expect(await keys({ group: { $regex: '^team-a/|^team-b/' } })).to.deep.equal([
        'team-a/api',
        'team-a/web',
        'team-b/a',
      ]);
      expect(await keys({ labels: { $regex: '^team-a/' } })).to.deep.equal(['team-a/api', 'team-a/web']);
      expect(await items.count({ labels: { $regex: '^x/o' } })).to.equal(3);
      expect(await keys({ group: { $regex: '^team-a/' }, labels: 'x/even' })).to.deep.equal(['team-a/api']);
    });
  });
}
