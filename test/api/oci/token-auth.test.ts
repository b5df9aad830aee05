import { generateKeyPairSync, createPrivateKey } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { calculateJwkThumbprint, SignJWT, type JWK } from 'jose';
import { expect } from 'chai';
import fc from 'fast-check';
import { parseAuthConfig } from '../../../src/oci/auth/auth-config.js';
import { GENERATED_KEY_PATH } from '../../../src/oci/auth/auth-layout.js';
import { KeyRing } from '../../../src/oci/auth/signing-keys.js';
import { FsDriver } from '../../../src/oci/storage/fs-driver.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import {
  createMatrixRobots,
  decodeJwt,
  requestToken,
  SERVICE,
  MATRIX_ALLOWED,
  matrixCallers,
  TARGETS,
  TokenClient,
  tokenFixture,
  USERS,
  type Credentials,
  type Target,
} from '../../helpers/token-auth.js';

describe('registry token mode (DESIGN 9) over HTTP', function () {
  this.timeout(30_000);
  let registry: TestRegistry;
  let dir: string;
  let config: Record<string, unknown>;
  const robots: Record<string, Credentials> = {};

  before(async () => {
    ({ dir, config } = await tokenFixture());
    registry = await startTestRegistry({ authConfig: config });
    const { pull, push, expired } = await createMatrixRobots(registry.root);
    Object.assign(robots, { 'alice-pull': pull, 'alice-push': push, pull, push, expired });
    const root = new TokenClient(registry.url, USERS.root);
    for (const name of Object.values(TARGETS)) {
      expect((await root.pushImage(name, '1.0', Buffer.from(`layer of ${name}`))).status, name).to.equal(201);
    }
  });
  after(async () => {
    await registry?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  describe('challenge and token endpoint', () => {
    it('answers /v2/ without a token with the Bearer challenge naming realm and service', async () => {
      const response = await fetch(`${registry.url}/v2/`);
      expect(response.status).to.equal(401);
      expect(response.headers.get('www-authenticate')).to.equal(
        `Bearer realm="${registry.url}/auth/token",service="${SERVICE}"`,
      );
      expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).to.equal(
        'UNAUTHORIZED',
      );
    });

    it('names the repository and actions in the challenge of a repository request', async () => {
      const pull = await fetch(`${registry.url}/v2/home/alice/app/manifests/1.0`);
      expect(pull.headers.get('www-authenticate')).to.include('scope="repository:home/alice/app:pull"');
      const push = await fetch(`${registry.url}/v2/home/alice/app/blobs/uploads/`, { method: 'POST' });
      expect(push.headers.get('www-authenticate')).to.include('scope="repository:home/alice/app:pull,push"');
      const catalog = await fetch(`${registry.url}/v2/_catalog`);
      expect(catalog.headers.get('www-authenticate')).to.include('scope="registry:catalog:*"');
    });

    it('issues an ES256 JWT whose access holds only what the rules grant, with kid = RFC 7638 thumbprint and x5c', async () => {
      const answer = await requestToken(registry.url, USERS.alice, [
        'repository:home/alice/app:pull,push,delete',
        'repository:home/bob/app:pull,push',
        'repository:library/app:pull,push',
        'repository:misc/app:pull',
      ]);
      expect(answer.status).to.equal(200);
      expect(answer.body.access_token).to.equal(answer.token);
      expect(answer.body.expires_in).to.equal(300);
      expect(Date.parse(String(answer.body.issued_at))).to.be.closeTo(Date.now(), 5000);
      const { header, claims } = decodeJwt(answer.token!);
      expect(header.alg).to.equal('ES256');
      const jwks = (await (await fetch(`${registry.url}/auth/jwks.json`)).json()) as { keys: JWK[] };
      expect(jwks.keys).to.have.length(1);
      const { kid: _kid, x5c: _x5c, use: _use, alg: _alg, ...bare } = jwks.keys[0]!;
      expect(header.kid).to.equal(await calculateJwkThumbprint(bare));
      expect(header.x5c).to.be.an('array').with.length(1);
      expect(claims).to.include({ iss: SERVICE, aud: SERVICE, sub: 'alice' });
      expect(claims.access).to.deep.equal([
        { type: 'repository', name: 'home/alice/app', actions: ['pull', 'push', 'delete'] },
        { type: 'repository', name: 'home/bob/app', actions: [] },
        { type: 'repository', name: 'library/app', actions: ['pull'] },
        { type: 'repository', name: 'misc/app', actions: [] },
      ]);
    });

    it('gives anonymous callers tokens for public pulls only', async () => {
      const answer = await requestToken(registry.url, undefined, [
        'repository:library/app:pull,push',
        'repository:home/alice/app:pull',
      ]);
      expect(answer.status).to.equal(200);
      const { claims } = decodeJwt(answer.token!);
      expect(claims.sub).to.equal(undefined);
      expect(claims.access).to.deep.equal([
        { type: 'repository', name: 'library/app', actions: ['pull'] },
        { type: 'repository', name: 'home/alice/app', actions: [] },
      ]);
    });

    it('refuses wrong passwords, wrong robot secrets and expired robots with 401', async () => {
      for (const credentials of [
        { username: 'alice', password: 'nope' },
        { username: 'nobody', password: 'x' },
        { ...robots['alice-push']!, password: 'wrong' },
        robots.expired!,
      ]) {
        const answer = await requestToken(registry.url, credentials, ['repository:home/alice/app:pull']);
        expect(answer.status, credentials.username).to.equal(401);
        expect(answer.token).to.equal(undefined);
      }
      const expired = await requestToken(registry.url, robots.expired, []);
      expect(JSON.stringify(expired.body)).to.include('expired');
    });

    it('answers malformed scopes and unknown services with 401 and the challenge, never 500', async () => {
      for (const scope of [
        'repository',
        'repository:home/alice/app',
        'repository::pull',
        'repository:UPPER/case:pull',
        'repository:a/../b:pull',
        'plugin:x:pull',
        'repository:home/alice/app:pu$h',
        'x'.repeat(5000),
      ]) {
        const answer = await requestToken(registry.url, USERS.alice, [scope]);
        expect(answer.status, scope.slice(0, 40)).to.equal(401);
        expect(answer.headers.get('www-authenticate'), scope.slice(0, 40)).to.match(
          /^Bearer realm="[^"]+\/auth\/token",service="registry.test",error="invalid_scope"$/,
        );
      }
      const wrongService = await fetch(
        `${registry.url}/auth/token?service=other&scope=repository:library/app:pull`,
      );
      expect(wrongService.status).to.equal(401);
    });
  });

  describe('the matrix: callers x namespaces x operations', () => {
    const callers = matrixCallers(robots);
    const allowed = MATRIX_ALLOWED;
    const catalogs: Record<string, string[] | undefined> = {
      anonymous: ['library/app'],
      user: ['home/alice/app', 'library/app'],
      'robot with pull': ['home/alice/app', 'library/app'],
      'robot with push': ['home/alice/app', 'library/app'],
      'expired robot': undefined,
      'wrong secret': undefined,
    };
    const success = { pull: 200, push: 201, delete: 202 } as const;

    for (const [caller, credentials] of Object.entries(callers)) {
      for (const [target, name] of Object.entries(TARGETS) as [Target, string][]) {
        for (const operation of ['pull', 'push', 'delete'] as const) {
          const may = allowed[caller]![target]?.includes(operation) ?? false;
          it(`${caller} ${may ? 'may' : 'may not'} ${operation} in the ${target} namespace`, async () => {
            const client = new TokenClient(registry.url, credentials());
            let status: number;
            if (operation === 'pull') {
              status = (await client.send(`/v2/${name}/manifests/1.0`, `repository:${name}:pull`)).status;
            } else if (operation === 'push') {
              status = (
                await client.pushImage(name, `by-${caller.replace(/ /g, '-')}`, Buffer.from(`${caller}`))
              ).status;
            } else {
              const victim = await new TokenClient(registry.url, USERS.root).pushImage(
                name,
                `victim-${caller.replace(/ /g, '-')}`,
                Buffer.from(`victim ${caller} ${name}`),
              );
              status = (
                await client.send(`/v2/${name}/manifests/${victim.digest}`, `repository:${name}:delete`, {
                  method: 'DELETE',
                })
              ).status;
            }
            expect(status).to.equal(may ? success[operation] : 401);
          });
        }
      }
      it(`${caller}: _catalog lists ${catalogs[caller] === undefined ? 'nothing (no token)' : 'only what it may pull'}`, async () => {
        const response = await new TokenClient(registry.url, credentials()).send(
          '/v2/_catalog',
          'registry:catalog:*',
        );
        const expected = catalogs[caller];
        if (expected === undefined) {
          expect(response.status).to.equal(401);
          return;
        }
        expect(response.status).to.equal(200);
        expect(((await response.json()) as { repositories: string[] }).repositories).to.deep.equal(expected);
      });
    }

    it('lists every repository to an admin', async () => {
      const response = await new TokenClient(registry.url, USERS.root).send(
        '/v2/_catalog',
        'registry:catalog:*',
      );
      expect(((await response.json()) as { repositories: string[] }).repositories).to.deep.equal([
        'home/alice/app',
        'home/bob/app',
        'library/app',
        'misc/app',
      ]);
    });

    it('answers a token lacking the action with insufficient_scope naming what is needed', async () => {
      const { token } = await requestToken(registry.url, robots['alice-pull'], [
        'repository:home/alice/app:pull,push',
      ]);
      const response = await fetch(`${registry.url}/v2/home/alice/app/blobs/uploads/`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}` },
      });
      expect(response.status).to.equal(401);
      expect(response.headers.get('www-authenticate')).to.equal(
        `Bearer realm="${registry.url}/auth/token",service="${SERVICE}",scope="repository:home/alice/app:pull,push",error="insufficient_scope"`,
      );
    });

    it('challenges a mount whose token never asked for the source, and falls back to an upload when denied there', async () => {
      const layer = await new TokenClient(registry.url, USERS.root).pushBlob(
        'home/bob/app',
        Buffer.from('bob layer'),
      );
      const mount = `/v2/home/alice/app/blobs/uploads/?mount=${layer.digest}&from=home/bob/app`;
      const narrow = await requestToken(registry.url, USERS.alice, ['repository:home/alice/app:pull,push']);
      const challenged = await fetch(`${registry.url}${mount}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${narrow.token}` },
      });
      expect(challenged.status).to.equal(401);
      expect(challenged.headers.get('www-authenticate')).to.include(
        'scope="repository:home/alice/app:pull,push repository:home/bob/app:pull",error="insufficient_scope"',
      );
      const both = await requestToken(registry.url, USERS.alice, [
        'repository:home/alice/app:pull,push repository:home/bob/app:pull',
      ]);
      const fallback = await fetch(`${registry.url}${mount}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${both.token}` },
      });
      expect(fallback.status).to.equal(202);
      const admin = await requestToken(registry.url, USERS.root, [
        'repository:home/alice/app:pull,push repository:home/bob/app:pull',
      ]);
      const mounted = await fetch(`${registry.url}${mount}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${admin.token}` },
      });
      expect(mounted.status).to.equal(201);
    });

    it('serves tag lists only to callers who may pull the repository', async () => {
      const alice = await new TokenClient(registry.url, USERS.alice).send(
        '/v2/home/alice/app/tags/list',
        'repository:home/alice/app:pull',
      );
      expect(alice.status).to.equal(200);
      expect(((await alice.json()) as { tags: string[] }).tags).to.include('1.0');
      const bob = await new TokenClient(registry.url, USERS.bob).send(
        '/v2/home/alice/app/tags/list',
        'repository:home/alice/app:pull',
      );
      expect(bob.status).to.equal(401);
    });
  });

  describe('bad tokens: all 401 with the challenge, never 500', () => {
    let ourKey: ReturnType<typeof createPrivateKey>;
    let kid: string;
    const target = '/v2/home/alice/app/manifests/1.0';
    const sign = (claims: Record<string, unknown>, key = ourKey, header: Record<string, unknown> = {}) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({
        iss: SERVICE,
        aud: SERVICE,
        sub: 'alice',
        iat: now,
        nbf: now - 10,
        exp: now + 300,
        access: [{ type: 'repository', name: 'home/alice/app', actions: ['pull'] }],
        ...claims,
      })
        .setProtectedHeader({ alg: 'ES256', kid, ...header })
        .sign(key);
    };
    const expectInvalid = async (token: string, error = 'invalid_token') => {
      const response = await fetch(`${registry.url}${target}`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      expect(response.status).to.equal(401);
      expect(response.headers.get('www-authenticate')).to.equal(
        `Bearer realm="${registry.url}/auth/token",service="${SERVICE}",scope="repository:home/alice/app:pull",error="${error}"`,
      );
    };

    before(async () => {
      ourKey = createPrivateKey(await fs.readFile(path.join(registry.root, GENERATED_KEY_PATH), 'utf8'));
      kid = registry.tokenMode!.keys.active.kid;
    });

    it('accepts a token signed with our key and right claims (the control)', async () => {
      const response = await fetch(`${registry.url}${target}`, {
        headers: { Authorization: `Bearer ${await sign({})}` },
      });
      expect(response.status).to.equal(200);
    });

    it('refuses a token signed by another key, even with our kid', async () => {
      const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      await expectInvalid(await sign({}, other));
      await expectInvalid(await sign({}, other, { kid: 'someone-else' }));
    });

    it('refuses alg none, HS256 and garbage', async () => {
      const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const claims = decodeJwt(await sign({})).claims;
      await expectInvalid(`${encode({ alg: 'none', typ: 'JWT' })}.${encode(claims)}.`);
      await expectInvalid(`${encode({ alg: 'HS256', kid })}.${encode(claims)}.${encode({ x: 1 })}`);
      for (const garbage of ['x', 'a.b.c', '...', '%%%.%%.%', 'e30.e30.e30'.repeat(100)])
        await expectInvalid(garbage);
    });

    it('refuses expired, not-yet-valid, wrong-audience and wrong-issuer tokens', async () => {
      const now = Math.floor(Date.now() / 1000);
      await expectInvalid(await sign({ iat: now - 1000, nbf: now - 1000, exp: now - 600 }));
      await expectInvalid(await sign({ nbf: now + 600 }));
      await expectInvalid(await sign({ aud: 'another-registry' }));
      await expectInvalid(await sign({ iss: 'someone' }));
    });

    it('refuses a malformed access claim, and a token for one repository used on another', async () => {
      await expectInvalid(await sign({ access: 'everything' }));
      await expectInvalid(
        await sign({ access: [{ type: 'repository', name: 'home/alice/app', actions: 'pull' }] }),
      );
      const other = await sign({
        access: [{ type: 'repository', name: 'home/alice/other', actions: ['pull'] }],
      });
      await expectInvalid(other, 'insufficient_scope');
    });
  });

  describe('hostile input', () => {
    it('never answers 5xx to random scopes, services, credentials and bearer tokens', async () => {
      const text = fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.constantFrom('repository:home/alice/app:pull', 'registry:catalog:*', 'repository:a:*', ':::', ''),
      );
      await fc.assert(
        fc.asyncProperty(
          fc.array(text, { maxLength: 4 }),
          fc.option(text),
          fc.option(
            fc.oneof(
              text.map((value) => `Basic ${value}`),
              text.map((value) => `Bearer ${value}`),
              text,
            ),
          ),
          fc.constantFrom(
            '/auth/token',
            '/v2/',
            '/v2/home/alice/app/manifests/1.0',
            '/v2/_catalog',
            '/auth/jwks.json',
          ),
          async (scopes, service, authorization, route) => {
            const query = new URLSearchParams();
            for (const scope of scopes) query.append('scope', scope);
            if (service !== null) query.set('service', service);
            const headers: Record<string, string> = {};
            // Header values must be Latin-1 without control characters for fetch to send them.
            if (authorization !== null && /^[\x20-\x7e]*$/.test(authorization))
              headers.authorization = authorization;
            const response = await fetch(`${registry.url}${route}?${query}`, { headers });
            await response.arrayBuffer();
            expect(response.status, `${route}?${query} ${authorization}`).to.be.below(500);
          },
        ),
        { numRuns: 300, seed: 20261201 },
      );
      expect((await fetch(`${registry.url}/auth/jwks.json`)).status).to.equal(200);
    });
  });

  describe('reload and key rotation', () => {
    it('applies new rules on reload without a restart', async () => {
      const before = await requestToken(registry.url, USERS.bob, ['repository:home/alice/app:pull']);
      expect(decodeJwt(before.token!).claims.access).to.deep.equal([
        { type: 'repository', name: 'home/alice/app', actions: [] },
      ]);
      const namespaces = config.namespaces as { prefix: string; rules?: unknown[] }[];
      const shared = {
        ...config,
        namespaces: namespaces.map((namespace) =>
          namespace.prefix === 'home/alice/'
            ? { ...namespace, rules: [...(namespace.rules ?? []), { subjects: ['bob'], actions: ['pull'] }] }
            : namespace,
        ),
      };
      await registry.tokenMode!.reload(parseAuthConfig(shared, 'test'));
      try {
        const response = await new TokenClient(registry.url, USERS.bob).send(
          '/v2/home/alice/app/manifests/1.0',
          'repository:home/alice/app:pull',
        );
        expect(response.status).to.equal(200);
      } finally {
        await registry.tokenMode!.reload(parseAuthConfig(config, 'test'));
      }
    });

    it('rotates the key with overlap: JWKS lists both, old tokens still work, robot secrets too', async () => {
      const old = await requestToken(registry.url, robots['alice-push'], ['repository:home/alice/app:pull']);
      const oldKid = decodeJwt(old.token!).header.kid;
      await KeyRing.rotateGenerated(
        new FsDriver(registry.root),
        { signingKeyFile: undefined, tokenTtlSeconds: 300, subject: SERVICE },
        Date.now(),
      );
      // The server notices the new key file within its check interval.
      await new Promise((resolve) => setTimeout(resolve, 2100));
      const fresh = await requestToken(registry.url, robots['alice-push'], [
        'repository:home/alice/app:pull',
      ]);
      expect(fresh.status).to.equal(200);
      const newKid = decodeJwt(fresh.token!).header.kid;
      expect(newKid).to.not.equal(oldKid);
      const jwks = (await (await fetch(`${registry.url}/auth/jwks.json`)).json()) as { keys: JWK[] };
      expect(jwks.keys.map((key) => key.kid)).to.deep.equal([newKid, oldKid]);
      for (const token of [old.token, fresh.token]) {
        const response = await fetch(`${registry.url}/v2/home/alice/app/manifests/1.0`, {
          headers: { Authorization: `Bearer ${token}` },
        });
        expect(response.status).to.equal(200);
      }
      const pem = await (await fetch(`${registry.url}/auth/certificates.pem`)).text();
      expect(pem.match(/BEGIN CERTIFICATE/g)).to.have.length(2);
    });
  });
});

describe('registry token mode: signing keys across restarts', function () {
  this.timeout(30_000);

  it('generates the key once: a restart on the same storage keeps it and old tokens verify', async () => {
    const { dir, config } = await tokenFixture();
    const root = path.join(dir, 'storage');
    const first = await startTestRegistry({ root, authConfig: config });
    const token = await requestToken(first.url, USERS.alice, ['repository:home/alice/app:pull']);
    const kid = first.tokenMode!.keys.active.kid;
    await first.close();
    const second = await startTestRegistry({ root, authConfig: config });
    try {
      expect(second.tokenMode!.keys.active.kid).to.equal(kid);
      const response = await fetch(`${second.url}/v2/home/alice/app/tags/list`, {
        headers: { Authorization: `Bearer ${token.token}` },
      });
      expect(response.status).to.equal(404); // accepted: the repository is just empty
    } finally {
      await second.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps trusting a replaced signing_key_file after a restart until its tokens expire', async () => {
    const { dir, config } = await tokenFixture();
    const root = path.join(dir, 'storage');
    const keyFile = path.join(dir, 'token-key.pem');
    const newKey = () =>
      fs.writeFile(
        keyFile,
        generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
          format: 'pem',
          type: 'pkcs8',
        }),
      );
    await newKey();
    const withKey = { ...config, signing_key_file: keyFile };
    const first = await startTestRegistry({ root, authConfig: withKey });
    const old = await requestToken(first.url, USERS.alice, ['repository:home/alice/app:pull']);
    const oldKid = first.tokenMode!.keys.active.kid;
    await first.close();
    await newKey();
    const second = await startTestRegistry({ root, authConfig: withKey });
    try {
      const jwks = (await (await fetch(`${second.url}/auth/jwks.json`)).json()) as { keys: JWK[] };
      expect(jwks.keys.map((key) => key.kid)).to.deep.equal([second.tokenMode!.keys.active.kid, oldKid]);
      const response = await fetch(`${second.url}/v2/home/alice/app/tags/list`, {
        headers: { Authorization: `Bearer ${old.token}` },
      });
      expect(response.status).to.equal(404);
    } finally {
      await second.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a signing key that is not EC P-256, in one line', async () => {
    const { dir, config } = await tokenFixture();
    const keyFile = path.join(dir, 'rsa.pem');
    await fs.writeFile(
      keyFile,
      generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }),
    );
    try {
      await startTestRegistry({ authConfig: { ...config, signing_key_file: keyFile } }).then(
        () => expect.fail('started'),
        (error: Error) =>
          expect(error.message).to.equal(
            `invalid configuration: REGISTRY_AUTH_CONFIG signing_key_file ${keyFile} must be an EC P-256 key (ES256)`,
          ),
      );
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
