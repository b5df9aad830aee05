/**
 * Replica crash rounds on one S3 bucket, longer than `npm test`'s (s3-replicas.test.ts):
 *
 *   node --import tsx test/stress/s3-replicas.ts [--rounds 50]
 *
 * 3 registry processes on a gofakes3 bucket; each round pushes 8 images concurrently with every
 * upload moving between replicas, SIGKILLs one replica (each in turn) 150-450 ms in, checks the
 * bucket, restarts it, retries every push and reads every image back from every replica. Prints
 * one line per round and a summary; exits 1 on corrupt or half-visible content.
 */
import { parseArgs } from 'node:util';
import { S3Driver } from '../../src/oci/storage/s3-driver.js';
import { replicaCrashRounds } from '../helpers/s3-replicas.js';
import { startS3Server } from '../helpers/s3-server.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '50' } } });
const rounds = Number(args.rounds);
const s3 = await startS3Server();
const settings = await s3.bucket('registry');
const driver = new S3Driver(settings);
let failed = false;
let interrupted = 0;
const started = Date.now();
console.log(`# S3 replica crash runs ${new Date().toISOString()}, node ${process.version}, gofakes3 v1.2.0`);
try {
  await replicaCrashRounds(s3.registryEnv(settings), driver, rounds, (round, result) => {
    interrupted += result.interrupted;
    console.log(
      `round ${round + 1}: ${result.interrupted} of 8 pushes interrupted, ${result.blobs} blobs verified`,
    );
  });
} catch (error) {
  failed = true;
  console.log(`FAILED: ${(error as Error).message}`);
}
console.log(
  `SUMMARY S3 replicas: ${rounds} SIGKILLs of 1 of 3 replicas, ${interrupted} pushes interrupted, ` +
    `corrupt or half-visible content: ${failed ? 'FOUND' : 'none'}, ${((Date.now() - started) / 1000).toFixed(0)} s`,
);
driver.client.destroy();
await s3.stop();
process.exit(failed ? 1 : 0);
