import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import request from 'supertest';
import { STORE_KINDS, startCatalog, type TestCatalog } from '../helpers/catalog.js';

const entry = JSON.parse(readFileSync(new URL('../fixtures/entry.json', import.meta.url), 'utf8')) as Record<
  string,
  unknown
> & { container_registry_id: string };
const ID = entry.container_registry_id;

/**
 * The fast read caches its serialised answer under the stored text and version (issue 12). These
 * cases change the stored document every way it can change, including behind the catalog's back
 * (another replica writing to the same database), and require the next plain read to answer
 * exactly what the Express route answers for the document as stored now.
 */
for (const kind of STORE_KINDS) {
  describe(`fast read answer cache (${kind} store)`, function () {
    let catalog: TestCatalog;
    beforeEach(async () => {
      catalog = await startCatalog(kind);
    });
    afterEach(async () => {
      await catalog.stop();
    });

    async function bothPaths() {
      const fast = await catalog.api.get(`/container_registry/${ID}`);
      const routed = await request(catalog.catalog.app).get(`/container_registry/${ID}`);
      expect(fast.status).to.equal(routed.status);
      expect(fast.body).to.deep.equal(routed.body);
      expect(fast.headers.etag).to.equal(routed.headers.etag);
      expect(fast.headers['content-length']).to.equal(routed.headers['content-length']);
      return fast;
    }

    it('answers the new document and entity tag after an update through the API', async () => {
      await catalog.api.post('/container_registry', entry);
      const first = await bothPaths();
      await bothPaths(); // a cached answer now
      const put = await catalog.api.put(`/container_registry/${ID}`, {
        $set: { 'container_registry_metadata.owner': 'someone-else' },
      });
      expect(put.status).to.equal(200);
      const second = await bothPaths();
      expect(second.headers.etag).to.not.equal(first.headers.etag);
      expect(second.headers.etag).to.equal(put.headers.etag);
      expect(second.body.data.container_registry_metadata.owner).to.equal('someone-else');
    });

    it('answers what another writer stored behind this process (same store, no API call)', async () => {
      await catalog.api.post('/container_registry', entry);
      const first = await bothPaths();
      const stored = (await catalog.store.get(ID))!;
      const changed = { ...stored.document, container_registry_name: 'renamed-elsewhere' };
      expect((await catalog.store.replaceIfVersion(changed, stored.version)).status).to.equal('replaced');
      const second = await bothPaths();
      expect(second.body.data.container_registry_name).to.equal('renamed-elsewhere');
      expect(second.headers.etag).to.not.equal(first.headers.etag);
    });

    it('answers 404 after a delete and the new document after a re-create at version 1', async () => {
      await catalog.api.post('/container_registry', entry);
      await bothPaths();
      expect((await catalog.api.delete(`/container_registry/${ID}`)).status).to.equal(200);
      expect((await catalog.api.get(`/container_registry/${ID}`)).status).to.equal(404);
      await catalog.api.post('/container_registry', { ...entry, container_registry_tags: ['recreated'] });
      const again = await bothPaths();
      expect(again.body.data.container_registry_tags).to.deep.equal(['recreated']);
    });

    it('keeps credentials masked in cached answers', async () => {
      await catalog.api.post('/container_registry', {
        ...entry,
        container_registry_config: { credentials: { username: 'robot', password: 's3cret' } },
      });
      for (let i = 0; i < 2; i++) {
        const res = await bothPaths();
        expect(res.text).to.not.include('s3cret');
        expect(res.body.data.container_registry_config.credentials.password).to.not.equal('s3cret');
      }
    });
  });
}
