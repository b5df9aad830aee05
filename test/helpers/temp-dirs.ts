import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** A new empty directory under the system's temp dir. */
export async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Inside a `describe`: a fresh temp dir for each test, removed after it; call the result to get it. */
export function tempDirPerTest(prefix: string): () => string {
  let dir: string | undefined;
  beforeEach(async () => {
    dir = await tempDir(prefix);
  });
  afterEach(async () => {
    if (dir !== undefined) await fs.rm(dir, { recursive: true, force: true });
    dir = undefined;
  });
  return () => {
    if (dir === undefined) throw new Error('tempDirPerTest: the directory exists only while a test runs');
    return dir;
  };
}
