/**
 * The resolver without HTTP: `node --import tsx bench/images/resolve-loop.ts --data-dir DIR
 * [--calls 5000] [--runs 3]` calls `ImageService.resolve` in a loop on a data directory that
 * `index.ts --data-dir DIR` loaded (1M records: 10 registries x 10,000 repositories x 10 tags),
 * by reference and by digest, and prints the CPU per call of each run and the fastest. On a
 * shared host the fastest run is the figure that moves least with the neighbours.
 */
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { ImageService } from '../../src/catalog/domain/images.js';
import { RegistryService } from '../../src/catalog/domain/registries.js';
import { EmbeddedDatabase } from '../../src/catalog/store/embedded-collection.js';
import { openRepositories } from '../../src/catalog/store/open-stores.js';
import { createLogger } from '../../src/shared/logger.js';
import { SchemaSet } from '../../src/shared/schemas.js';
import { imageDigest, pick as pickRepository, repositoryName } from './names.js';

const { values } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    calls: { type: 'string', default: '5000' },
    runs: { type: 'string', default: '3' },
  },
});
if (values['data-dir'] === undefined) throw new Error('--data-dir DIR (loaded by bench/images/index.ts)');
const CALLS = Number(values.calls);
const RUNS = Number(values.runs);
/** Repositories per registry in a 1M-record data directory of index.ts. */
const REPOSITORIES = 10_000;
const pick = (n: number) => pickRepository(n, REPOSITORIES);

const opened = await openRepositories(await EmbeddedDatabase.open(values['data-dir']), 'registries', '');
const images = new ImageService({
  store: opened.imageStore,
  registries: new RegistryService({ store: opened.store, schemas: new SchemaSet() }),
  healthStore: opened.healthStore,
  crawl: () => Promise.reject(new Error('no crawls in this benchmark')),
  logger: createLogger('bench', 'silent'),
  metrics: new Registry(),
});
const kinds = {
  reference: (n: number) => ({ reference: `${repositoryName(pick(n))}:v${n % 10}` }),
  digest: (n: number) => ({ digest: imageDigest(pick(n), n % 10) }),
};
const fastest: Record<string, number> = {};
try {
  for (let run = 0; run < RUNS; run++)
    for (const [kind, request] of Object.entries(kinds)) {
      // Other references in every run: no run finds its rows' pages touched by the one before.
      const requests = Array.from({ length: CALLS }, (_, i) => request(i + run * CALLS));
      const before = process.cpuUsage();
      for (const each of requests) {
        const { candidates } = await images.resolve(each);
        if (candidates.length === 0) throw new Error(`nothing for ${JSON.stringify(each)}`);
      }
      const used = process.cpuUsage(before);
      const perCall = (used.user + used.system) / CALLS;
      fastest[kind] = Math.min(fastest[kind] ?? Infinity, perCall);
      console.log(`run ${run + 1} resolve by ${kind}: ${perCall.toFixed(1)} us CPU per call`);
    }
  for (const [kind, us] of Object.entries(fastest))
    console.log(`fastest of ${RUNS} runs, resolve by ${kind}: ${us.toFixed(1)} us CPU per call`);
} finally {
  await opened.database.close();
}
