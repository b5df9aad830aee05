/**
 * Test harness for the bundled OCI registry: starts it in-process on a loopback port with its
 * own temp storage root, builds (once, cached under .cache/) the official conformance suite,
 * starts CNCF Distribution for comparisons, and pushes images over plain HTTP.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { createOciApp, type OciApp } from '../../src/oci/app.js';
import type { StorageDriver } from '../../src/oci/storage/driver.js';
import { listen, type RunningServer } from '../../src/shared/server.js';

const execFileAsync = promisify(execFile);
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CACHE = path.join(REPO_ROOT, '.cache');

export interface TestRegistry {
  readonly url: string;
  /** `127.0.0.1:<port>`, as skopeo wants it. */
  readonly host: string;
  readonly root: string;
  readonly app: OciApp;
  readonly server: RunningServer;
  close(): Promise<void>;
}

export interface TestRegistryOptions {
  readonly root?: string;
  readonly htpasswd?: string;
  readonly readOnly?: boolean;
  readonly uploadTimeoutSeconds?: number;
  readonly maxUploadBytes?: number;
  readonly maxConcurrentUploadsPerRepo?: number;
  readonly readOnlyUsers?: readonly string[];
  readonly now?: () => number;
  /** Storage other than a temp directory (the S3 driver on a test bucket). */
  readonly driver?: StorageDriver;
}

export async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Starts the registry app in this process on 127.0.0.1:<free port> with a fresh storage root. */
export async function startTestRegistry(options: TestRegistryOptions = {}): Promise<TestRegistry> {
  const root = options.root ?? (await tempDir('registry-test-'));
  const app = createOciApp({
    config: {
      storageRoot: root,
      htpasswd: options.htpasswd,
      readOnly: options.readOnly ?? false,
      uploadTimeoutSeconds: options.uploadTimeoutSeconds ?? 3600,
      maxManifestBytes: 4 * 1024 * 1024,
      maxUploadBytes: options.maxUploadBytes ?? 10 * 1024 ** 3,
      maxConcurrentUploadsPerRepo: options.maxConcurrentUploadsPerRepo ?? 32,
      readOnlyUsers: options.readOnlyUsers ?? [],
    },
    logger: pino({ level: 'silent' }),
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.driver === undefined ? {} : { driver: options.driver }),
  });
  const server = await listen(app.handler, { host: '127.0.0.1', port: 0 });
  return {
    url: server.url,
    host: `127.0.0.1:${server.port}`,
    root,
    app,
    server,
    close: async () => {
      app.close();
      await server.close(1000);
      if (options.root === undefined) await fs.rm(root, { recursive: true, force: true });
    },
  };
}

/** The conformance suite release the issue pins, and where its built test binary is cached. */
const CONFORMANCE_MODULE = 'github.com/opencontainers/distribution-spec/conformance';
const CONFORMANCE_DIR = path.join(REPO_ROOT, 'test', 'conformance');

/**
 * Builds the official conformance suite (`go test -c` from test/conformance, through the Go
 * module proxy) unless a binary built from the same go.mod/go.sum is cached under .cache/.
 */
export async function buildConformanceSuite(): Promise<string> {
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum']) hash.update(await fs.readFile(path.join(CONFORMANCE_DIR, file)));
  const binary = path.join(CACHE, 'conformance', `conformance-${hash.digest('hex').slice(0, 16)}.test`);
  if (existsSync(binary)) return binary;
  await fs.mkdir(path.dirname(binary), { recursive: true });
  const partial = `${binary}.partial`;
  await execFileAsync('go', ['test', '-c', '-o', partial, CONFORMANCE_MODULE], {
    cwd: CONFORMANCE_DIR,
    env: {
      ...process.env,
      PATH: `${process.env.PATH ?? ''}:/usr/local/go/bin`,
      GOCACHE: process.env.GOCACHE ?? path.join(CACHE, 'go-build'),
      GOMODCACHE: process.env.GOMODCACHE ?? path.join(CACHE, 'go-mod'),
      GOFLAGS: '-mod=readonly',
    },
    maxBuffer: 16 * 1024 * 1024,
  });
  await fs.rename(partial, binary);
  return binary;
}

/** A process started by a test, stopped by `stop` (SIGTERM, then SIGKILL). */
export interface ChildHandle {
  readonly child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

export function startChild(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): ChildHandle {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Waits until `url` answers at all (any HTTP status). */
export async function waitForHttp(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await fetch(url);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

export async function freePort(): Promise<number> {
  const server = await listen(() => undefined, { host: '127.0.0.1', port: 0 });
  const { port } = server;
  await server.close(0);
  return port;
}

export const DISTRIBUTION_BINARY = '/usr/bin/docker-registry';

/** CNCF Distribution (Debian `docker-registry`) on a loopback port with filesystem storage in a temp dir. */
export async function startDistribution(): Promise<{
  url: string;
  host: string;
  root: string;
  stop(): Promise<void>;
}> {
  const root = await tempDir('distribution-');
  const port = await freePort();
  const config = path.join(root, 'config.yml');
  await fs.writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(root, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const handle = startChild(DISTRIBUTION_BINARY, ['serve', config]);
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/v2/`);
  return {
    url,
    host: `127.0.0.1:${port}`,
    root,
    stop: async () => {
      await handle.stop();
      await fs.rm(root, { recursive: true, force: true });
    },
  };
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * Monolithic blob push (`POST ?digest=`); when the registry answers 202 instead (CNCF
 * Distribution 2.8 ignores `digest` on POST, which the spec allows), the bytes follow in a PUT.
 */
export async function pushBlob(url: string, name: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const response = await fetch(`${url}/v2/${name}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: data,
  });
  await response.arrayBuffer();
  if (response.status === 202) {
    const location = new URL(response.headers.get('location') ?? '', url);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: data,
    });
    if (put.status !== 201) throw new Error(`blob push failed: ${put.status} ${await put.text()}`);
    return digest;
  }
  if (response.status !== 201) throw new Error(`blob push failed: ${response.status}`);
  return digest;
}

/** An OCI image manifest for `config` and `layers` (plain tar layers), with `extra` members. */
export function imageManifest(config: Buffer, layers: Buffer[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: sha256(config),
        size: config.length,
      },
      layers: layers.map((layer) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: sha256(layer),
        size: layer.length,
      })),
      ...extra,
    }),
  );
}

/** Pushes config + layers + an OCI image manifest under `tag`; returns the manifest digest. */
export async function pushImage(
  url: string,
  name: string,
  tag: string,
  layers: Buffer[],
  extra: Record<string, unknown> = {},
): Promise<{ digest: string; manifest: Buffer; layerDigests: string[]; configDigest: string }> {
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
  );
  const configDigest = await pushBlob(url, name, config);
  const layerDigests: string[] = [];
  for (const layer of layers) layerDigests.push(await pushBlob(url, name, layer));
  const manifest = imageManifest(config, layers, extra);
  const response = await fetch(`${url}/v2/${name}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  if (response.status !== 201)
    throw new Error(`manifest push failed: ${response.status} ${await response.text()}`);
  return { digest: sha256(manifest), manifest, layerDigests, configDigest };
}
