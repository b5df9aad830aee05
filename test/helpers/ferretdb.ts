import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * FerretDB 1.24 (MongoDB wire protocol on SQLite) for the tests: built once from
 * test/ferretdb/ with the local Go toolchain into .cache/ferretdb/, rebuilt when its sources
 * change, and started on a free loopback port with its data in a temp dir.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SOURCE_DIR = path.join(ROOT, 'test', 'ferretdb');
const CACHE_DIR = path.join(ROOT, '.cache', 'ferretdb');
const BINARY = path.join(CACHE_DIR, 'ferretdb-harness');
const STAMP = path.join(CACHE_DIR, 'source.sha256');

/** The Go toolchain: `go` on PATH, or the usual install location. */
export function goBinary(): string {
  const onPath = spawnSync('go', ['version'], { stdio: 'ignore' });
  if (onPath.status === 0) return 'go';
  if (existsSync('/usr/local/go/bin/go')) return '/usr/local/go/bin/go';
  throw new Error('Go is required to build the FerretDB test harness; install Go 1.22+ (https://go.dev/dl/)');
}

/** Builds the harness unless the cached binary was built from the current sources. */
export function buildFerretDb(): string {
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum', 'main.go']) hash.update(readFileSync(path.join(SOURCE_DIR, file)));
  const digest = hash.digest('hex');
  if (existsSync(BINARY) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === digest) return BINARY;
  mkdirSync(CACHE_DIR, { recursive: true });
  const result = spawnSync(goBinary(), ['build', '-o', BINARY, '.'], {
    cwd: SOURCE_DIR,
    encoding: 'utf8',
    env: { ...process.env, CGO_ENABLED: '0' },
  });
  if (result.status !== 0) throw new Error(`building the FerretDB harness failed:\n${result.stderr}`);
  writeFileSync(STAMP, digest);
  return BINARY;
}

export interface FerretDbServer {
  readonly uri: string;
  stop(): void;
}

/** Starts FerretDB on a free 127.0.0.1 port with a fresh data dir; resolves once it accepts connections. */
export async function startFerretDb(): Promise<FerretDbServer> {
  const binary = buildFerretDb();
  const dir = mkdtempSync(path.join(tmpdir(), 'ferretdb-'));
  const child = spawn(binary, ['-listen', '127.0.0.1:0', '-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();

    if (process.env.FERRETDB_DEBUG) process.stderr.write(chunk);
  });
  const uri = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`FerretDB did not start within 30 s: ${stderr}`)),
      30_000,
    );
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      resolve(line.trim());
    });
    child.once('exit', (code) => reject(new Error(`FerretDB exited with ${code}: ${stderr}`)));
  });
  let stopped = false;
  return {
    uri,
    stop: () => {
      if (stopped) return;
      stopped = true;
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
