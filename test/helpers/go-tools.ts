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
 * Says on stderr what the test run is preparing (a cold Go build is minutes of silence otherwise);
 * call the returned function when it is done.
 */
export function announce(what: string): () => void {
  const start = Date.now();
  process.stderr.write(`test setup: ${what}...\n`);
  return () =>
    process.stderr.write(`test setup: ${what}: done in ${((Date.now() - start) / 1000).toFixed(1)} s\n`);
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
  const done = announce(`building test/${name} with Go into .cache/${name}/ (a minute or so the first time)`);
  const result = spawnSync(goBinary(), ['build', '-o', binary, '.'], {
    cwd: sourceDir,
    encoding: 'utf8',
    env: { ...process.env, CGO_ENABLED: '0' },
  });
  if (result.status !== 0) throw new Error(`building test/${name} failed:\n${result.stderr}`);
  writeFileSync(stamp, digest);
  done();
  return binary;
}

/**
 * Go programs the tests drive as real clients and servers, pinned by module version. Each is
 * built once with `go install` into `.cache/bin/<name>@<version>/` and reused; Go's own module and
 * build caches make a rebuild after a version bump cheap.
 */
export const GO_TOOLS = {
  crane: 'github.com/google/go-containerregistry/cmd/crane@v0.22.1',
  regctl: 'github.com/regclient/regclient/cmd/regctl@v0.11.7',
  oras: 'oras.land/oras/cmd/oras@v1.3.6',
  registry: 'github.com/distribution/distribution/v3/cmd/registry@v3.1.2',
  gofakes3: 'github.com/johannesboyne/gofakes3/cmd/gofakes3@v1.2.0',
  // A fuller S3 server (a gateway onto a POSIX directory), for test/stress/s3-versitygw.sh only.
  versitygw: 'github.com/versity/versitygw/cmd/versitygw@v1.8.0',
} as const;

/** Path of the binary of one of {@link GO_TOOLS}, installing it first when it is missing. */
export function installGoTool(name: keyof typeof GO_TOOLS): string {
  const module = GO_TOOLS[name];
  const version = module.slice(module.lastIndexOf('@') + 1);
  const binDir = path.join(ROOT, '.cache', 'bin', `${name}@${version}`);
  const binary = path.join(binDir, name);
  if (existsSync(binary)) return binary;
  mkdirSync(binDir, { recursive: true });
  const done = announce(`go install ${module} into .cache/bin/`);
  const result = spawnSync(goBinary(), ['install', module], {
    encoding: 'utf8',
    env: { ...process.env, GOBIN: binDir, CGO_ENABLED: '0' },
  });
  if (result.status !== 0 || !existsSync(binary)) {
    throw new Error(`go install ${module} failed:\n${result.stderr}`);
  }
  done();
  return binary;
}
