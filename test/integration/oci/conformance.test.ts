import fs from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { RobotStore } from '../../../src/oci/auth/robots.js';
import { FsDriver } from '../../../src/oci/storage/fs-driver.js';
import { expectAllPassed, runSuite } from '../../helpers/conformance.js';
import { buildConformanceSuite, startTestRegistry } from '../../helpers/registry.js';
import { tempDir } from '../../helpers/temp-dirs.js';
import { tokenFixture } from '../../helpers/token-auth.js';

describe('registry: OCI distribution-spec conformance suite v1.1.1', function () {
  // Building the suite from scratch (module download + compile) takes ~30 s on 2 cores; it is cached.
  this.timeout(240_000);
  let binary: string;

  before(async () => {
    binary = await buildConformanceSuite();
  });

  it('passes every test of all four workflows (pull, push, content discovery with referrers, management)', async () => {
    const registry = await startTestRegistry();
    try {
      expectAllPassed(await runSuite(binary, registry.url));
    } finally {
      await registry.close();
    }
  });

  it('passes them all with htpasswd Basic auth on', async () => {
    const dir = await tempDir('conformance-auth-');
    await fs.writeFile(path.join(dir, 'htpasswd'), `conformance:${bcrypt.hashSync('s3cret', 4)}\n`);
    const registry = await startTestRegistry({ htpasswd: path.join(dir, 'htpasswd') });
    try {
      expectAllPassed(
        await runSuite(binary, registry.url, { OCI_USERNAME: 'conformance', OCI_PASSWORD: 's3cret' }),
      );
    } finally {
      await registry.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('passes them all in token mode (Bearer token flow), as a robot that may push and delete in its namespace', async () => {
    const { dir, config } = await tokenFixture({ namespaces: [{ prefix: 'conformance/' }] });
    const registry = await startTestRegistry({ authConfig: config });
    try {
      const robot = await new RobotStore(new FsDriver(registry.root)).create({
        name: 'conformance',
        prefix: 'conformance/',
        actions: ['pull', 'push', 'delete'],
      });
      expectAllPassed(
        await runSuite(binary, registry.url, { OCI_USERNAME: robot.account, OCI_PASSWORD: robot.secret }),
      );
    } finally {
      await registry.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
