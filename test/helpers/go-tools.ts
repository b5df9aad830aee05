import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The Go toolchain: `go` on PATH, or the usual install location. */
export function goBinary(): string {
  if (spawnSync('go', ['version'], { stdio: 'ignore' }).status === 0) return 'go';
  if (existsSync('/usr/local/go/bin/go')) return '/usr/local/go/bin/go';
  throw new Error('Go 1.24+ is required to build the test tools; install it from https://go.dev/dl/');
}

/**
 * Builds the Go program in `test/<name>/` into `.cache/<name>/<name>` unless the cached binary
 * was built from the same sources (go.mod, go.sum and every .go file), and returns its path.
 */
export function buildGoTool(name: string): string {
  const sourceDir = path.join(ROOT, 'test', name);
  const cacheDir = path.join(ROOT, '.cache', name);
  const binary = path.join(cacheDir, name);
  const stamp = path.join(cacheDir, 'source.sha256');
  const hash = createHash('sha256');
  for (const file of readdirSync(sourceDir)
    .filter((file) => /\.go$|^go\.(mod|sum)$/.test(file))
    .sort()) {
    hash.update(file).update(readFileSync(path.join(sourceDir, file)));
  }
  const digest = hash.digest('hex');
  if (existsSync(binary) && existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) return binary;
  mkdirSync(cacheDir, { recursive: true });
  const result = spawnSync(goBinary(), ['build', '-o', binary, '.'], {
    cwd: sourceDir,
    encoding: 'utf8',
    env: { ...process.env, CGO_ENABLED: '0' },
  });
  if (result.status !== 0) throw new Error(`building test/${name} failed:\n${result.stderr}`);
  writeFileSync(stamp, digest);
  return binary;
}
