import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { sha256, trickle } from '../../helpers/registry.js';
import { tempDir } from '../../helpers/temp-dirs.js';
import { startRegistry } from '../../helpers/registry-push.js';

// SIGKILL during concurrent pushes: test/integration/crash-safety.test.ts (registryCrashRound).

describe('registry: graceful shutdown', function () {
  this.timeout(30_000);

  it('finishes a push in flight after SIGTERM, refuses new connections, and exits 0', async () => {
    const root = await tempDir('registry-shutdown-');
    try {
      const { process: child, base } = await startRegistry(root);
      const blob = randomBytes(2 * 1024 * 1024);
      const push = trickle(`${base}/v2/stop/app/blobs/uploads/?digest=${sha256(blob)}`, 'POST', blob);
      await new Promise((resolve) => setTimeout(resolve, 50));
      child.child.kill('SIGTERM');
      expect((await push).status).to.equal(201);
      expect((await child.exited).code).to.equal(0);
      await fetch(`${base}/v2/`).then(
        () => expect.fail('the registry still accepts connections'),
        (error: Error) => expect(error.message).to.equal('fetch failed'),
      );
      const stored = await fs.readFile(
        path.join(root, 'blobs', 'sha256', sha256(blob).slice(7, 9), sha256(blob).slice(7)),
      );
      expect(Buffer.compare(stored, blob)).to.equal(0);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});
