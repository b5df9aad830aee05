import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import type { Collection } from '../../src/catalog/store/collection.js';
import { EmbeddedDatabase } from '../../src/catalog/store/embedded-collection.js';
import { tempDirPerTest } from '../helpers/temp-dirs.js';

// The embedded store remembers counts and texts read by id until the file changes
// (`UntilChanged`): writes through its own connection are covered by the collection contract;
// these are a write by another connection to the same file (an operator's sqlite3, a second
// process), which SQLite reports through `data_version` only, and a read inside a transaction
// that is rolled back (the change counter does not go back).
type Item = { key: string; group: string };

/** Runs `body` on a store holding item `a` of group `g`, with a second connection to its file. */
async function withStore(
  dir: string,
  body: (items: Collection<Item>, database: EmbeddedDatabase, other: Database.Database) => Promise<void>,
): Promise<void> {
  const database = await EmbeddedDatabase.open(dir);
  try {
    const items = await database.collection<Item>('items', {
      idField: 'key',
      indexes: [{ field: 'group', kind: 'column', column: 'item_group' }],
    });
    await items.create({ key: 'a', group: 'g' });
    const other = new Database(path.join(dir, 'catalog.db'));
    try {
      await body(items, database, other);
    } finally {
      other.close();
    }
  } finally {
    await database.close();
  }
}

describe('embedded store: remembered counts and texts after another connection wrote to the file', () => {
  const dirNow = tempDirPerTest('embedded-counts-');

  it('sees rows another connection inserted and deleted', () =>
    withStore(dirNow(), async (items, _database, other) => {
      expect(await items.count({ group: 'g' })).to.equal(1);
      expect(await items.count({})).to.equal(1);
      other
        .prepare('INSERT INTO items (id, version, item_group, doc) VALUES (?, 1, ?, ?)')
        .run('b', 'g', JSON.stringify({ key: 'b', group: 'g' }));
      expect(await items.count({ group: 'g' })).to.equal(2);
      expect(await items.count({})).to.equal(2);
      other.prepare('DELETE FROM items WHERE id = ?').run('a');
      expect(await items.count({ group: 'g' })).to.equal(1);
      expect(await items.count({})).to.equal(1);
    }));

  it('reads texts another connection wrote, and none a rolled-back transaction held', () =>
    withStore(dirNow(), async (items, database, other) => {
      const groupOf = async (id: string) => {
        const text = (await items.getTexts([id])).get(id)?.text;
        return text === undefined ? undefined : (JSON.parse(text) as { group: string }).group;
      };
      expect(await groupOf('a')).to.equal('g');
      expect(await groupOf('b')).to.equal(undefined);

      other
        .prepare('INSERT INTO items (id, version, item_group, doc) VALUES (?, 1, ?, ?)')
        .run('b', 'h', JSON.stringify({ key: 'b', group: 'h' }));
      other
        .prepare('UPDATE items SET doc = ? WHERE id = ?')
        .run(JSON.stringify({ key: 'a', group: 'g2' }), 'a');
      expect(await groupOf('b')).to.equal('h');
      expect(await groupOf('a')).to.equal('g2');

      // Read inside a transaction after its write, then rolled back: the text read must not stay.
      const db = database.db;
      expect(() =>
        db.transaction(() => {
          db.prepare('UPDATE items SET doc = ? WHERE id = ?').run(
            JSON.stringify({ key: 'a', group: 'rolled' }),
            'a',
          );
          void items.getTexts(['a']);
          throw new Error('roll back');
        })(),
      ).to.throw('roll back');
      expect(await groupOf('a')).to.equal('g2');
    }));
});
