/**
 * CPU time of the fast read's own work inside the process (the route's read and answer, the
 * token check), no HTTP: 100,000 reads of 1,000 embedded documents, three rounds. Give another
 * checkout's root to compare (its fast read returned the body unserialised: its figure omits
 * the JSON.stringify that front.ts then did).
 *
 *   node --import tsx bench/catalog/fast-read-cpu.ts [checkout root]
 */
import { fileURLToPath } from 'node:url';
const root = process.argv[2] ?? fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const { openTestStore } = await import(`${root}/test/helpers/catalog.js`);
const { CATALOG_ROUTES } = await import(`${root}/src/catalog/routes/table.js`);
const { RegistryService } = await import(`${root}/src/catalog/domain/registries.js`);
const { SchemaSet } = await import(`${root}/src/shared/schemas.js`);
const { AccessPolicy } = await import(`${root}/src/catalog/access/policy.js`);
const { hashToken } = await import(`${root}/src/catalog/access/tokens.js`);
const { documentAt, idAt, BENCH_TOKEN } = await import(`${root}/bench/catalog/documents.js`);
const opened = await openTestStore('embedded');
for (let i = 0; i < 1000; i++) await opened.store.create(documentAt(i));
const registries = new RegistryService({ store: opened.store, schemas: new SchemaSet() });
const route = (CATALOG_ROUTES as Array<{ fastRead?: unknown }>).find((r) => r.fastRead) as {
  fastRead: (s: unknown) => (p: Record<string, string>) => Promise<unknown>;
};
const fast = route.fastRead({ registries });
const policy = new AccessPolicy(
  [{ name: 'bench', role: 'admin', sha256: hashToken(BENCH_TOKEN), expiresAt: undefined }],
  false,
);
const auth = `Bearer ${BENCH_TOKEN}`;
const N = 100_000;
for (let round = 0; round < 3; round++) {
  let c = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    const a = await fast({ registry_id: idAt(i % 1000) });
    if (!a) throw 0;
  }
  let u = process.cpuUsage(c);
  const readUs = (u.user + u.system) / N;
  c = process.cpuUsage();
  for (let i = 0; i < N; i++) policy.decide({ role: 'read', probe: false }, auth);
  u = process.cpuUsage(c);
  console.log(
    root.split('/').pop(),
    `fast read ${readUs.toFixed(2)} µs, token check ${((u.user + u.system) / N).toFixed(2)} µs`,
  );
}
await opened.cleanup();
