/**
 * `npm run bench -- <suite> [options]`: runs one benchmark suite, or all of them in turn.
 * Suites: catalog, registry, proxy, token, health, images, soak, cli, register, events, ui. Each prints its figures and ratios against a reference
 * measured in the same run; bench/README.md records them with the command used.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const SUITES = [
  'catalog',
  'registry',
  'proxy',
  'token',
  'health',
  'images',
  'soak',
  'cli',
  'register',
  'events',
  'ui',
] as const;
const here = path.dirname(fileURLToPath(import.meta.url));
const [suite, ...rest] = process.argv.slice(2);
const chosen = suite && (SUITES as readonly string[]).includes(suite) ? [suite] : SUITES;
for (const name of chosen) {
  const script = path.join(here, name, 'run.ts');
  if (!existsSync(script)) {
    console.error(`bench ${name}: ${script} does not exist`);
    process.exitCode = 1;
    continue;
  }
  console.log(`\n=== bench ${name}`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', script, ...(suite === name ? rest : [])], {
    stdio: 'inherit',
  });
  if (result.status !== 0) process.exitCode = result.status ?? 1;
}
