import path from 'node:path';
import { buildFerretDb } from '../helpers/ferretdb.js';
import { buildGoTool, installGoTool, ROOT } from '../helpers/go-tools.js';

/** The test files of this mocha run, relative to the repository root. */
function filesOfRun(context: Mocha.Context): string[] {
  let root = context.test?.parent;
  while (root?.parent) root = root.parent;
  return (root?.suites ?? [])
    .map((suite) => suite.file)
    .filter((file): file is string => file !== undefined)
    .map((file) => path.relative(ROOT, file));
}

/**
 * Mocha root hooks: build the Go programs this run needs, once, before any test, with a timeout fit
 * for a cold build (about a minute each on 2 cores; later runs reuse the cached binaries). Only what
 * the run's files use is built: unit tests need no Go at all (`npm run test:unit`); FerretDB is the
 * MongoDB of every other tier (unless MONGODB_URI points at a real one); the deploy checker serves
 * the deploy tests. The Go clients and servers of the integration tests (Distribution 3, crane,
 * gofakes3) are installed here too when the run has integration files: on a cold Go build cache
 * Distribution alone takes two minutes, more than a file's `before` hook may.
 */
export const mochaHooks = {
  beforeAll(this: Mocha.Context) {
    this.timeout(600_000);
    const files = filesOfRun(this);
    /** Whether the run has files under `test/<dirs...>/`. */
    const runs = (...dirs: string[]) =>
      files.some((file) => file.startsWith(path.join('test', ...dirs) + path.sep));
    const outsideUnit = files.some((file) => !file.startsWith(path.join('test', 'unit') + path.sep));
    if (outsideUnit && !process.env.MONGODB_URI) buildFerretDb();
    if (runs('integration', 'deploy')) buildGoTool('deploy-check');
    if (runs('integration'))
      for (const tool of ['registry', 'crane', 'gofakes3'] as const) installGoTool(tool);
  },
};
