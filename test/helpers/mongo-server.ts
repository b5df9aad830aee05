import { startFerretDb, type FerretDbServer } from './ferretdb.js';

/**
 * The MongoDB the tests use: `MONGODB_URI` when set (a real MongoDB), otherwise one FerretDB
 * per test process, started on first use and stopped when the process exits. Tests isolate
 * themselves with a database of their own.
 */

let server: Promise<FerretDbServer> | undefined;

export function getMongoUri(): Promise<string> {
  const given = process.env.MONGODB_URI;
  if (given) return Promise.resolve(given);
  server ??= startFerretDb().then((started) => {
    process.once('exit', () => started.stop());
    return started;
  });
  return server.then(({ uri }) => uri);
}

/** True when the tests run against FerretDB rather than a real MongoDB. */
export function usingFerretDb(): boolean {
  return !process.env.MONGODB_URI;
}

export async function stopMongoServer(): Promise<void> {
  if (server) (await server).stop();
  server = undefined;
}
