import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { catalogCrashRound, registryCrashRound } from '../helpers/crash.js';
import { getMongoUri } from '../helpers/mongo-server.js';
import { tempDirPerTest } from '../helpers/temp-dirs.js';

// The CI-sized version of test/stress/crash.ts (50 rounds per store, 20 for the registry; figures
// in test/stress/RESULTS.md): a few SIGKILLs at random moments under concurrent writes.
describe('crash safety: SIGKILL under load', function () {
  this.timeout(180_000);
  const dirNow = tempDirPerTest('crash-safety-');

  const rounds = async (env: Record<string, string>, count: number) => {
    const known = new Map();
    let acknowledged = 0;
    for (let round = 0; round < count; round++) {
      const result = await catalogCrashRound(env, known);
      expect(result.lost, `round ${round}`).to.deep.equal([]);
      acknowledged += result.creates + result.updates;
    }
    expect(known.size, 'writes were acknowledged before the kills').to.be.greaterThan(count);
    return acknowledged;
  };

  it('embedded store: every acknowledged create and update survives 5 kills', async () => {
    await rounds({ DATA_DIR: dirNow() }, 5);
  });

  it('MongoDB store (FerretDB): every acknowledged create and update survives 3 kills of the catalog', async () => {
    await rounds(
      { MONGODB_URI: await getMongoUri(), MONGODB_DATABASE: `crash_${randomUUID().slice(0, 8)}` },
      3,
    );
  });

  it('registry: 3 kills during 8 concurrent pushes leave nothing corrupt or half-visible', async () => {
    let interrupted = 0;
    for (let round = 0; round < 3; round++)
      interrupted += (await registryCrashRound(dirNow(), round)).interrupted;
    expect(interrupted, 'the kills hit pushes in flight').to.be.greaterThan(0);
  });
});
