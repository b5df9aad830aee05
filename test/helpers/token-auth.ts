/**
 * Token mode test kit: a fixture (htpasswd users, an auth config with tenants, public and
 * private namespaces) and a tiny client that follows the Docker token flow over plain HTTP.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { RobotStore } from '../../src/oci/auth/robots.js';
import { FsDriver } from '../../src/oci/storage/fs-driver.js';
import { imageManifest, sha256 } from './registry.js';
import { tempDir } from './temp-dirs.js';

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export const SERVICE = 'registry.test';

/** A repository of each kind the matrix tests: public, the caller's own, another tenant's, in no namespace. */
export const TARGETS = {
  public: 'library/app',
  private: 'home/alice/app',
  'other tenant': 'home/bob/app',
  'outside namespaces': 'misc/app',
} as const;
export type Target = keyof typeof TARGETS;

/**
 * Runs `fn` with a fresh Docker config directory logged in to `host` as `credentials` (none:
 * anonymous), as crane and other clients read it; removes it afterwards.
 */
export async function withDockerLogin<T>(
  host: string,
  credentials: Credentials | undefined,
  fn: (configDir: string) => Promise<T>,
): Promise<T> {
  const config = await tempDir('docker-config-');
  const auths =
    credentials === undefined
      ? {}
      : {
          [host]: { auth: Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64') },
        };
  await fs.writeFile(path.join(config, 'config.json'), JSON.stringify({ auths }));
  try {
    return await fn(config);
  } finally {
    await fs.rm(config, { recursive: true, force: true });
  }
}

/** People of the fixture: alice and bob are tenants, root is an admin. */
export const USERS = {
  alice: { username: 'alice', password: 'alice-pw' },
  bob: { username: 'bob', password: 'bob-pw' },
  root: { username: 'root', password: 'root-pw' },
} as const satisfies Record<string, Credentials>;

/** Writes the htpasswd file; returns the auth config document using it (extend as needed). */
export async function tokenFixture(extra: Record<string, unknown> = {}): Promise<{
  dir: string;
  config: Record<string, unknown>;
}> {
  const dir = await tempDir('token-auth-');
  const htpasswd = path.join(dir, 'htpasswd');
  await fs.writeFile(
    htpasswd,
    Object.values(USERS)
      .map((user) => `${user.username}:${bcrypt.hashSync(user.password, 4).replace('$2b$', '$2y$')}`)
      .join('\n'),
  );
  return {
    dir,
    config: {
      service: SERVICE,
      htpasswd,
      namespaces: [
        { prefix: 'home/alice/', rules: [{ subjects: ['alice'], actions: ['pull', 'push', 'delete'] }] },
        { prefix: 'home/bob/', rules: [{ subjects: ['bob'], actions: ['pull', 'push', 'delete'] }] },
        { prefix: 'library/', public: true },
      ],
      admins: ['root'],
      ...extra,
    },
  };
}

export function basic(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

/** `GET /auth/token` for `scopes`; the raw answer. */
export async function requestToken(
  url: string,
  credentials: Credentials | undefined,
  scopes: readonly string[],
): Promise<{ status: number; token: string | undefined; body: Record<string, unknown>; headers: Headers }> {
  const query = new URLSearchParams({ service: SERVICE });
  for (const scope of scopes) query.append('scope', scope);
  const response = await fetch(`${url}/auth/token?${query}`, {
    headers: credentials === undefined ? {} : { Authorization: basic(credentials) },
  });
  const body = (await response.json()) as Record<string, unknown>;
  return {
    status: response.status,
    token: body.token as string | undefined,
    body,
    headers: response.headers,
  };
}

/** The claims of a JWT (no verification: for assertions). */
export function decodeJwt(token: string): {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
} {
  const [header = '', claims = ''] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(header, 'base64url').toString()) as Record<string, unknown>,
    claims: JSON.parse(Buffer.from(claims, 'base64url').toString()) as Record<string, unknown>,
  };
}

/** A client acting as one caller: gets a token per request for its scope, like Docker clients. */
export class TokenClient {
  constructor(
    readonly url: string,
    readonly credentials: Credentials | undefined,
  ) {}

  /** Sends `init` to `path` with a token for `scope`; a refused token request is returned as is. */
  async send(path: string, scope: string, init: RequestInit = {}): Promise<Response> {
    const token = await requestToken(this.url, this.credentials, [scope]);
    if (token.token === undefined) return new Response(JSON.stringify(token.body), { status: token.status });
    return fetch(`${this.url}${path}`, {
      ...init,
      headers: { ...(init.headers as Record<string, string>), Authorization: `Bearer ${token.token}` },
    });
  }

  async pushBlob(name: string, data: Buffer): Promise<{ status: number; digest: string }> {
    const digest = sha256(data);
    const response = await this.send(
      `/v2/${name}/blobs/uploads/?digest=${digest}`,
      `repository:${name}:pull,push`,
      {
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream' },
        body: data,
      },
    );
    await response.arrayBuffer();
    return { status: response.status, digest };
  }

  /** Pushes a one-layer image under `tag`; the status of the first refused step, or 201. */
  async pushImage(name: string, tag: string, layer: Buffer): Promise<{ status: number; digest: string }> {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', tag }));
    for (const blob of [config, layer]) {
      const pushed = await this.pushBlob(name, blob);
      if (pushed.status !== 201) return { status: pushed.status, digest: '' };
    }
    const manifest = imageManifest(config, [layer]);
    const response = await this.send(`/v2/${name}/manifests/${tag}`, `repository:${name}:pull,push`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    });
    await response.arrayBuffer();
    return { status: response.status, digest: sha256(manifest) };
  }
}

/**
 * The robots of the access matrix, all of tenant alice (`home/alice/`) in the registry stored at
 * `storageRoot`: one that may pull, one that may pull and push, and one created three days ago
 * for one day (expired).
 */
export async function createMatrixRobots(
  storageRoot: string,
): Promise<{ pull: Credentials; push: Credentials; expired: Credentials }> {
  const store = new RobotStore(new FsDriver(storageRoot));
  const past = new RobotStore(new FsDriver(storageRoot), () => Date.now() - 3 * 86_400_000);
  const credentials = ({ account, secret }: { account: string; secret: string }) => ({
    username: account,
    password: secret,
  });
  const prefix = 'home/alice/';
  return {
    pull: credentials(await store.create({ name: 'alice-pull', prefix, actions: ['pull'] })),
    push: credentials(await store.create({ name: 'alice-push', prefix, actions: ['pull', 'push'] })),
    expired: credentials(
      await past.create({ name: 'alice-old', prefix, actions: ['pull', 'push'], expiresDays: 1 }),
    ),
  };
}

/** The matrix's callers, by name: what each presents (robots as `createMatrixRobots` made them). */
export function matrixCallers(robots: {
  readonly pull?: Credentials;
  readonly push?: Credentials;
  readonly expired?: Credentials;
}): Record<string, () => Credentials | undefined> {
  return {
    anonymous: () => undefined,
    user: () => USERS.alice,
    'robot with pull': () => robots.pull,
    'robot with push': () => robots.push,
    'expired robot': () => robots.expired,
    'wrong secret': () => ({ ...robots.push!, password: 'not-the-secret' }),
  };
}

/** What each caller of the matrix may do, by target (an operation not listed is refused). */
export const MATRIX_ALLOWED: Readonly<Record<string, Partial<Record<Target, readonly string[]>>>> = {
  anonymous: { public: ['pull'] },
  user: { public: ['pull'], private: ['pull', 'push', 'delete'] },
  'robot with pull': { public: ['pull'], private: ['pull'] },
  'robot with push': { public: ['pull'], private: ['pull', 'push'] },
  'expired robot': {},
  'wrong secret': {},
};
