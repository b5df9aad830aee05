/**
 * The bundled registry as a process, and a check of its storage afterwards: shared by the SIGKILL
 * tests (test/integration) and runs (test/stress). Pushes go through `pushImage` (registry.ts).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { spawnCli, type CliProcess } from './spawn-cli.js';

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => path.join(entry.parentPath, entry.name));
}

/** Every visible blob matches its name; every manifest link, tag and referrer names complete content. */
export async function assertConsistent(root: string): Promise<number> {
  const blobs = await filesUnder(path.join(root, 'blobs'));
  for (const file of blobs) {
    const hex = createHash('sha256')
      .update(await fs.readFile(file))
      .digest('hex');
    expect(path.basename(file), `blob ${file} is corrupt or half-written`).to.equal(hex);
  }
  for (const file of await filesUnder(path.join(root, 'repositories'))) {
    const relative = path.relative(path.join(root, 'repositories'), file);
    const tagMatch = /\/_manifests\/tags\/[^/]+$/.exec(relative);
    const revisionMatch = /\/_manifests\/revisions\/sha256\/([a-f0-9]{64})$/.exec(relative);
    const layerMatch = /\/_layers\/sha256\/([a-f0-9]{64})$/.exec(relative);
    if (tagMatch !== null) {
      const digest = (await fs.readFile(file, 'utf8')).replace('sha256:', '');
      const repository = relative.slice(0, tagMatch.index);
      await fs.access(path.join(root, 'repositories', repository, '_manifests/revisions/sha256', digest));
    } else if (revisionMatch !== null || layerMatch !== null) {
      const hex = (revisionMatch ?? layerMatch)![1]!;
      await fs.access(path.join(root, 'blobs', 'sha256', hex.slice(0, 2), hex));
    } else {
      expect.fail(`unexpected file in repositories: ${relative}`);
    }
  }
  return blobs.length;
}

export async function startRegistry(root: string): Promise<{ process: CliProcess; base: string }> {
  const child = spawnCli(['registry', '--host', '127.0.0.1', '--port', '0', '--storage-root', root], {
    LOG_LEVEL: 'info',
  });
  // 60 s: on a loaded machine, starting node with tsx alone can take longer than the default 15 s.
  const line = await child.waitForLog((entry) => entry.msg === 'registry listening', 60_000);
  return { process: child, base: String(line.url) };
}
