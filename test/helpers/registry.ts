import http from 'node:http';
import { freePort } from './ports.js';
import { spawnCli, type CliProcess } from './spawn-cli.js';
import { tempDir } from './temp-dirs.js';
/**
 * Test harness for the bundled OCI registry: starts it in-process on a loopback port with its
 * own temp storage root, builds (once, cached under .cache/) the official conformance suite,
 * starts CNCF Distribution for comparisons, and pushes images over plain HTTP.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { createOciApp, type OciApp } from '../../src/oci/app.js';
import { parseAuthConfig } from '../../src/oci/auth/auth-config.js';
import { TokenMode } from '../../src/oci/auth/token-mode.js';
import type { StorageDriver } from '../../src/oci/storage/driver.js';
import { FsDriver } from '../../src/oci/storage/fs-driver.js';
import type { UpstreamConfig } from '../../src/oci/proxy/config.js';
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
  readonly tokenMode: TokenMode | undefined;
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
  readonly maxUploadSessionsPerRepo?: number;
  readonly maxUploadSessionsPerClient?: number;
  readonly now?: () => number;
  /** Token mode: the auth config document (as the YAML/JSON file would hold it). */
  readonly authConfig?: Record<string, unknown>;
  /** Pull-through cache upstreams (see `resolveUpstreams`). */
  readonly upstreams?: readonly UpstreamConfig[];
  /** Log level of the app (default silent). */
  readonly logLevel?: string;
  /** Storage other than a temp directory (the S3 driver on a test bucket). */
  readonly driver?: StorageDriver;
}

/** Starts the registry app in this process on 127.0.0.1:<free port> with a fresh storage root. */
export async function startTestRegistry(options: TestRegistryOptions = {}): Promise<TestRegistry> {
  const root = options.root ?? (await tempDir('registry-test-'));
  const driver = options.driver ?? new FsDriver(root);
  const logger = pino({ level: options.logLevel ?? 'silent' });
  const tokenMode =
    options.authConfig === undefined
      ? undefined
      : await TokenMode.create(parseAuthConfig(options.authConfig, 'test auth config'), {
          driver,
          logger,
          uploadTimeoutSeconds: options.uploadTimeoutSeconds ?? 3600,
          ...(options.now === undefined ? {} : { now: options.now }),
        });
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
      upstreams: options.upstreams ?? [],
      maxUploadSessionsPerRepo: options.maxUploadSessionsPerRepo ?? 100,
      maxUploadSessionsPerClient: options.maxUploadSessionsPerClient ?? 50,
    },
    logger,
    driver,
    tokenMode,
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  const server = await listen(app.handler, { host: '127.0.0.1', port: 0 });
  return {
    url: server.url,
    host: `127.0.0.1:${server.port}`,
    root,
    app,
    server,
    tokenMode,
    close: async () => {
      app.close();
      await tokenMode?.close();
      await server.close(1000);
      await app.proxy?.settled();
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

/** Our registry spawned from the CLI (`registry --host 127.0.0.1 --port <port> --storage-root <root> ...`). */
export interface SpawnedRegistry {
  readonly url: string;
  readonly port: number;
  readonly cli: CliProcess;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Spawns `registry` on loopback with `flags` after the listen and storage flags; resolves once
 * `/v2/` answers. `port` keeps a restarted registry at its address (default: a free one).
 */
export async function spawnRegistry(
  root: string,
  flags: readonly string[] = [],
  options: { port?: number; env?: Record<string, string>; nodeArgs?: string[] } = {},
): Promise<SpawnedRegistry> {
  const port = options.port ?? (await freePort());
  const cli = spawnCli(
    ['registry', '--host', '127.0.0.1', '--port', String(port), '--storage-root', root, ...flags],
    { LOG_LEVEL: 'warn', ...options.env },
    options.nodeArgs,
  );
  const url = `http://127.0.0.1:${port}`;
  // Generous: a spawned tsx process starts slowly on a loaded machine.
  const died = cli.exited.then(() => {
    throw new Error(`registry exited at start: ${cli.stderr()}`);
  });
  died.catch(() => undefined); // only the race below listens: an exit after the start is no error
  await Promise.race([waitForHttp(`${url}/v2/`, 60_000), died]);
  return {
    url,
    port,
    cli,
    stop: async () => {
      if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGTERM');
      await cli.exited;
    },
  };
}

export const DISTRIBUTION_BINARY = '/usr/bin/docker-registry';

/**
 * CNCF Distribution (Debian `docker-registry`, or another build given as `binary`) on a loopback
 * port with filesystem storage in a temp dir; `extraConfig` lines are appended to its YAML.
 */
export async function startDistribution(
  options: {
    binary?: string;
    extraConfig?: string[];
    /** The blob descriptor cache of Distribution's stock config (benchmarks: the reference as shipped). */
    inMemoryCache?: boolean;
  } = {},
): Promise<{
  url: string;
  host: string;
  root: string;
  /** Of the Distribution process (benchmarks sample its RSS). */
  pid: number;
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
      ...(options.inMemoryCache === true ? ['  cache:', '    blobdescriptor: inmemory'] : []),
      '  filesystem:',
      `    rootdirectory: ${path.join(root, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      ...(options.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  const handle = startChild(options.binary ?? DISTRIBUTION_BINARY, ['serve', config]);
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/v2/`);
  return {
    url,
    host: `127.0.0.1:${port}`,
    root,
    pid: handle.child.pid!,
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

/** Sends `data` in 64 KiB pieces with a pause between them, so the request is in flight for a while. */
export function trickle(
  url: string,
  method: string,
  data: Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, {
      method,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length, ...headers },
    });
    request.on('response', (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers }));
    });
    request.on('error', reject);
    let offset = 0;
    const next = () => {
      if (offset >= data.length) return request.end();
      request.write(data.subarray(offset, offset + 65536));
      offset += 65536;
      setTimeout(next, 5);
    };
    next();
  });
}

/**
 * How blobs go up: `fetch` (one POST, or POST then PUT), or trickled in 64 KiB pieces so the
 * request stays in flight long enough to be interrupted: `trickle` monolithic, `trickle-chunked`
 * as POST + PATCH + PUT.
 */
export type BlobUpload = 'fetch' | 'trickle' | 'trickle-chunked';

/** Pushes `data` as a blob of `name` the way `upload` says; returns its digest. */
async function uploadBlob(url: string, name: string, data: Buffer, upload: BlobUpload): Promise<string> {
  if (upload === 'fetch') return pushBlob(url, name, data);
  const digest = sha256(data);
  if (upload === 'trickle') {
    const done = await trickle(`${url}/v2/${name}/blobs/uploads/?digest=${digest}`, 'POST', data);
    if (done.status !== 201) throw new Error(`monolithic push answered ${done.status}`);
    return digest;
  }
  const started = await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  let location = started.headers.get('location') ?? '';
  const half = Math.floor(data.length / 2);
  const first = await trickle(`${url}${location}`, 'PATCH', data.subarray(0, half), {
    'Content-Range': `0-${half - 1}`,
  });
  location = String(first.headers.location);
  const second = await trickle(`${url}${location}?digest=${digest}`, 'PUT', data.subarray(half));
  if (second.status !== 201) throw new Error(`chunked push answered ${second.status}`);
  return digest;
}

/** Pushes config + layers + an OCI image manifest under `tag`; returns the manifest digest. */
export async function pushImage(
  url: string,
  name: string,
  tag: string,
  layers: Buffer[],
  extra: Record<string, unknown> = {},
  upload: BlobUpload = 'fetch',
): Promise<{ digest: string; manifest: Buffer; layerDigests: string[]; configDigest: string }> {
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
  );
  const configDigest = await uploadBlob(url, name, config, upload);
  const layerDigests: string[] = [];
  for (const layer of layers) layerDigests.push(await uploadBlob(url, name, layer, upload));
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
