import { expect } from 'chai';
import fc from 'fast-check';
import { loopbackCrawler, STORE_KINDS, startCatalog, type TestCatalog } from '../helpers/catalog.js';
import { FUZZ_KEYS } from '../helpers/fuzz-vocabulary.js';

/**
 * "No request a client can send produces a 500": random JSON bodies built from the operators,
 * field paths and awkward keys of our languages, sent to every write and query route of both
 * stores. Each must get an answer below 500 (and bad input must not change the stored entry).
 */
const keys = fc.constantFrom(...FUZZ_KEYS);
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ maxLength: 20 }),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(keys, tie('value'), { maxKeys: 3 }),
  ),
})).value;
const routes = [
  'POST /container_registry',
  'PUT <id>',
  'POST /container_registries',
  'POST /container_registries?sort=-container_registry_metadata.a',
  'POST /container_images',
  'POST /container_images?sort=-platforms.architecture,tag',
  // Self-registration (bodies of a bundled registry started with --register-with).
  'PUT <id>/registration',
  'POST <id>/heartbeat',
  'POST <id>/events',
];

for (const kind of STORE_KINDS) {
  describe(`no server errors on random input (${kind} store)`, function () {
    this.timeout(120_000);
    let catalog: TestCatalog;
    let id: string;
    before(async () => {
      catalog = await startCatalog(kind, { crawl: loopbackCrawler() });
      const created = await catalog.api.post('/container_registry', {
        container_registry_name: 'fuzz',
        container_registry_public_url: 'http://fuzz.example.test',
      });
      id = created.body.data.id;
    });
    after(async () => {
      await catalog.stop();
    });

    it('answers 300 random requests below 500, and refused updates change nothing', async () => {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...routes), json, async (route, body) => {
          const [method, path] = route.split(' ') as ['POST' | 'PUT', string];
          const before = await catalog.store.get(id);
          const res = await catalog.api.call(
            method,
            path.replace(/^<id>/, `/container_registry/${id}`),
            undefined,
            {
              raw: JSON.stringify(body),
              contentType: 'application/json',
            },
          );
          expect(res.status, `${route} ${JSON.stringify(body)}: ${res.text.slice(0, 200)}`).to.be.below(500);
          if (method === 'PUT' && res.status >= 400)
            expect(await catalog.store.get(id)).to.deep.equal(before);
        }),
        { numRuns: 300 },
      );
    });
  });
}
