import { expect } from 'chai';
import request from 'supertest';
import { createCatalog } from '../../src/catalog/app.js';
import { RegistryService } from '../../src/catalog/domain/registries.js';
import { ValidationError } from '../../src/catalog/errors.js';
import type { ContainerRegistry } from '../../src/catalog/model.js';
import { EmbeddedDatabase } from '../../src/catalog/store/embedded-collection.js';
import { REGISTRIES } from '../../src/catalog/store/registry-store.js';
import { createLogger } from '../../src/shared/logger.js';
import { SchemaSet } from '../../src/shared/schemas.js';
import { openTestStore, type TestStore } from '../helpers/catalog.js';

/** The documented cap of a query without `limit`/`skip` (README, "Querying"). */
const CAP = 100_000;

function entry(n: number, tag: string): ContainerRegistry {
  return {
    container_registry_id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    container_registry_name: `r-${n}`,
    container_registry_metadata: {},
    container_registry_tags: [tag],
    container_registry_public_url: `http://127.0.0.1:${1 + (n % 60000)}`,
    container_registry_image_prefix: `127.0.0.1:${1 + (n % 60000)}`,
    container_registry_config: { auth_required: false },
    container_registry_storage_info: { storage_type: 'fs' },
  };
}

describe('unpaged query cap: more than 100,000 matches (embedded store, through the API)', function () {
  this.timeout(180_000);
  let opened: TestStore;
  let handler: ReturnType<typeof createCatalog>['handler'];
  before(async () => {
    opened = await openTestStore('embedded');
    // Seeded in bulk (one transaction per 10,000) rather than 100,001 API calls.
    const collection = await (opened.database as EmbeddedDatabase).collection<ContainerRegistry>(
      'registries',
      REGISTRIES,
    );
    for (let start = 1; start <= CAP + 1; start += 10_000) {
      const batch = Array.from({ length: Math.min(10_000, CAP + 2 - start) }, (_, i) =>
        entry(start + i, start + i <= CAP ? 'in-cap' : 'over'),
      );
      await collection.createMany(batch);
    }
    ({ handler } = createCatalog({
      store: opened.store,
      schemas: new SchemaSet(),
      logger: createLogger('test', 'silent'),
      bodyLimitBytes: 1 << 20,
    }));
  });
  after(async () => {
    await opened.cleanup();
  });

  it('refuses 100,001 matches with a 400 naming limit, and nothing is streamed', async () => {
    const res = await request(handler).post('/container_registries').send({});
    expect(res.status).to.equal(400);
    expect(res.headers['content-type']).to.match(/json/);
    expect(res.headers['x-total-count']).to.equal(undefined);
    expect(res.body.success).to.equal(false);
    expect(res.body.error).to.include('matches 100001 entries, more than the 100000');
    expect(res.body.errors[0].pointer).to.equal('/limit');
  });

  it('answers exactly 100,000 matches whole, streamed, with X-Total-Count', async () => {
    const res = await request(handler)
      .post('/container_registries')
      .send({ container_registry_tags: 'in-cap' });
    expect(res.status).to.equal(200);
    expect(res.headers['x-total-count']).to.equal(String(CAP));
    expect(res.headers['transfer-encoding']).to.equal('chunked');
    expect(res.body.data).to.have.length(CAP);
    expect(res.body.data.at(-1).container_registry_id).to.equal(entry(CAP, '').container_registry_id);
  });

  it('still pages past the cap with limit and skip', async () => {
    const res = await request(handler)
      .post(`/container_registries?limit=10&skip=${CAP - 5}`)
      .send({});
    expect(res.status).to.equal(200);
    expect(res.headers['x-total-count']).to.equal(String(CAP + 1));
    expect(res.body.data).to.have.length(6);
  });
});

describe('unpaged query cap on FerretDB (the same rule at a smaller cap, cheap to seed)', function () {
  this.timeout(120_000);
  let opened: TestStore;
  let service: RegistryService;
  const COUNT = 1_201; // past the 1,000 matches read ahead, so the count runs
  before(async () => {
    opened = await openTestStore('mongo');
    for (let start = 1; start <= COUNT; start += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, COUNT + 1 - start) }, (_, i) =>
          opened.store.create(entry(start + i, 'x')),
        ),
      );
    }
    service = new RegistryService({ store: opened.store, schemas: new SchemaSet() });
  });
  after(async () => {
    await opened.cleanup();
  });

  it('refuses more matches than the cap with the same 400', async () => {
    const refusal = await service.queryAll({}, [], undefined, COUNT - 1).catch((error: unknown) => error);
    expect(refusal).to.be.instanceOf(ValidationError);
    expect((refusal as Error).message).to.include(`matches ${COUNT} entries, more than the ${COUNT - 1}`);
  });

  it('streams every match up to the cap, with the total', async () => {
    const { items, total } = await service.queryAll({}, [], undefined, COUNT);
    expect(total).to.equal(COUNT);
    let n = 0;
    for await (const item of items) {
      n++;
      void item;
    }
    expect(n).to.equal(COUNT);
  });
});
