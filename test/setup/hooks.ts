import { buildFerretDb } from '../helpers/ferretdb.js';
import { buildGoTool } from '../helpers/go-tools.js';

/**
 * Mocha root hooks: build the Go-based test tools once, before any test, with a timeout fit for a
 * cold build (about a minute on 2 cores); later runs reuse the cached binaries.
 */
export const mochaHooks = {
  beforeAll(this: Mocha.Context) {
    this.timeout(600_000);
    buildFerretDb();
    buildGoTool('deploy-check');
  },
};
