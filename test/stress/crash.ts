/**
 * Crash-safety runs, longer than `npm test`'s (test/integration/crash-safety.test.ts):
 *
 *   node --import tsx test/stress/crash.ts [--catalog-rounds 50] [--registry-rounds 20] [--only embedded|mongo|registry]
 *
 * Each catalog round starts `serve`, lets 8 clients create entries and `$set`/`$push` into them,
 * SIGKILLs the process 100-600 ms in, restarts it on the same store and checks every write ever
 * acknowledged (all rounds so far). Each registry round SIGKILLs 8 concurrent pushes and checks
 * the storage and the retried pushes. Prints one line per round and a summary; exits 1 on a loss.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { catalogCrashRound, registryCrashRound } from '../helpers/crash.js';
import { getMongoUri, stopMongoServer } from '../helpers/mongo-server.js';

const { values: args } = parseArgs({
  options: {
    'catalog-rounds': { type: 'string', default: '50' },
    'registry-rounds': { type: 'string', default: '20' },
    only: { type: 'string' },
  },
});
const catalogRounds = Number(args['catalog-rounds']);
let failed = false;

async function catalog(store: 'embedded' | 'mongo'): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'stress-crash-'));
  const env: Record<string, string> =
    store === 'embedded'
      ? { DATA_DIR: dir }
      : { MONGODB_URI: await getMongoUri(), MONGODB_DATABASE: `stress_${randomUUID().slice(0, 8)}` };
  const known = new Map();
  let creates = 0;
  let updates = 0;
  let lost = 0;
  const restarts: number[] = [];
  const started = Date.now();
  for (let round = 1; round <= catalogRounds; round++) {
    const result = await catalogCrashRound(env, known);
    creates += result.creates;
    updates += result.updates;
    lost += result.lost.length;
    restarts.push(result.restartMs);
    for (const problem of result.lost) console.log(`  LOST ${problem}`);
    console.log(
      `${store} round ${round}: ${result.creates} creates + ${result.updates} updates acknowledged, ` +
        `${known.size} entries checked after restart, lost ${result.lost.length}, restart ${result.restartMs} ms`,
    );
  }
  restarts.sort((a, b) => a - b);
  console.log(
    `SUMMARY catalog ${store}: ${catalogRounds} SIGKILLs, ${creates} creates + ${updates} updates acknowledged, ` +
      `${known.size} entries re-checked after every restart, lost ${lost}, restart median ${restarts[restarts.length >> 1]} ms, ` +
      `${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  if (lost > 0) failed = true;
  await rm(dir, { recursive: true, force: true });
}

async function registry(): Promise<void> {
  const root = await mkdtemp(path.join(tmpdir(), 'stress-registry-'));
  const rounds = Number(args['registry-rounds']);
  let interrupted = 0;
  const started = Date.now();
  for (let round = 1; round <= rounds; round++) {
    try {
      const result = await registryCrashRound(root, round);
      interrupted += result.interrupted;
      console.log(
        `registry round ${round}: ${result.interrupted} of 8 pushes interrupted, ${result.blobs} blobs verified, restart ${result.restartMs} ms`,
      );
    } catch (error) {
      failed = true;
      console.log(`registry round ${round}: FAILED ${(error as Error).message}`);
    }
  }
  console.log(
    `SUMMARY registry: ${rounds} SIGKILLs, ${interrupted} pushes interrupted, corrupt or half-visible content: ${failed ? 'FOUND' : 'none'}, ` +
      `${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  await rm(root, { recursive: true, force: true });
}

console.log(`# crash runs ${new Date().toISOString()}, node ${process.version}`);
if (!args.only || args.only === 'embedded') await catalog('embedded');
if (!args.only || args.only === 'mongo') await catalog('mongo');
if (!args.only || args.only === 'registry') await registry();
stopMongoServer();
process.exit(failed ? 1 : 0);
