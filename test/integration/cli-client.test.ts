import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AccessPolicy } from '../../src/catalog/access/policy.js';
import { createToken, parseTokenEntries } from '../../src/catalog/access/tokens.js';
import { AddressPolicy } from '../../src/catalog/health/address-policy.js';
import { createProber } from '../../src/catalog/health/probe.js';
import { listen, type RunningServer } from '../../src/shared/server.js';
import { loopbackCrawler, startCatalog, type TestCatalog } from '../helpers/catalog.js';
import { pushPlatformImage } from '../helpers/image-fixtures.js';
import { freePort } from '../helpers/ports.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { runCli, type CliRun } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dirs.js';

/**
 * The CLI client (`registries`, `health`, `images`) against a real catalog on loopback with
 * access control on, a bundled registry holding an image, and the catalog's prober and crawler
 * allowed to reach loopback only. Every command is run as a process; `--json` output is parsed.
 */

const writer = createToken('cli-writer', 'write');
const reader = createToken('cli-reader', 'read');
const seed = JSON.parse(readFileSync(new URL('../fixtures/entry.json', import.meta.url), 'utf8')) as Record<
  string,
  unknown
>;

/** A failed command: exactly one line on stderr, nothing on stdout, and the exit status. */
function expectFailure(run: CliRun, code: number, pattern: RegExp): void {
  expect(run.code, run.stderr).to.equal(code);
  expect(run.stdout).to.equal('');
  expect(
    run.stderr.endsWith('\n') && run.stderr.split('\n').length === 2,
    JSON.stringify(run.stderr),
  ).to.equal(true);
  expect(run.stderr).to.match(pattern);
}

function parsed<T>(run: CliRun): T {
  expect(run.code, run.stderr).to.equal(0);
  return JSON.parse(run.stdout) as T;
}

describe('CLI client against a real catalog', function () {
  // Each command is a process of its own (tsx compiling the CLI): slow on a loaded machine.
  this.timeout(300_000);
  let catalog: TestCatalog;
  let server: RunningServer;
  let registry: TestRegistry;
  let env: Record<string, string>;
  let dir: string;
  let registryId: string;
  const cli = (args: string[], stdin?: string, extra: Record<string, string> = {}) =>
    runCli(args, { ...env, ...extra }, stdin);

  before(async () => {
    registry = await startTestRegistry();
    await pushPlatformImage(registry.url, 'team/app', '1.0', { os: 'linux', architecture: 'amd64' });
    const policy = new AccessPolicy(parseTokenEntries(`${writer.entry}\n${reader.entry}`), false);
    catalog = await startCatalog('embedded', {
      probe: createProber({
        policy: new AddressPolicy({ allow: ['127.0.0.0/8', '::1/128'], deny: [] }),
        defaultTimeoutMs: 2000,
      }),
      crawl: loopbackCrawler(),
      access: { policy, rateLimitPerSecond: 0, healthCheckRateLimitPerMinute: 0, corsOrigins: [] },
    });
    server = await listen(catalog.catalog.handler, { host: '127.0.0.1', port: 0 });
    env = { AIOS_CATALOG_URL: server.url, AIOS_CATALOG_TOKEN: writer.token };
    dir = await tempDir('cli-client-');
  });
  after(async () => {
    await server?.close(1000);
    await catalog?.stop();
    await registry?.close();
  });

  describe('registries', () => {
    it('creates from a file, from standard input and from flags', async () => {
      // The seed's entry, pointed at the loopback registry (nothing may probe 10.13.21.22).
      const entry = {
        ...seed,
        container_registry_public_url: registry.url,
        container_registry_image_prefix: registry.host,
      };
      const file = path.join(dir, 'entry.json');
      await writeFile(file, JSON.stringify(entry));
      const created = parsed<{ id: string; container_registry: Record<string, unknown> }>(
        await cli(['registries', 'create', '--file', file, '--json']),
      );
      expect(created.id).to.equal(seed.container_registry_id);
      expect(created.container_registry).to.deep.equal(entry);
      registryId = created.id;

      const fromStdin = await cli(
        ['registries', 'create', '--file', '-', '--name', 'from-stdin'],
        JSON.stringify({
          container_registry_public_url: 'http://127.0.0.1:9',
          container_registry_tags: ['cli'],
        }),
      );
      expect(fromStdin.code, fromStdin.stderr).to.equal(0);
      expect(fromStdin.stdout).to.match(/^created [0-9a-f-]{36}\n$/);
      const stdinId = fromStdin.stdout.trim().split(' ')[1]!;
      expect((await catalog.store.get(stdinId))?.document.container_registry_name).to.equal('from-stdin');

      const fromFlags = parsed<{ container_registry: Record<string, unknown> }>(
        await cli([
          'registries',
          'create',
          '--name',
          'down-one',
          '--public-url',
          'http://127.0.0.1:9',
          '--tag',
          'cli',
          '--tag',
          'down',
          '--metadata',
          '{"owner":"ops"}',
          '--json',
        ]),
      );
      expect(fromFlags.container_registry).to.include({ container_registry_name: 'down-one' });
      expect(fromFlags.container_registry.container_registry_tags).to.deep.equal(['cli', 'down']);
      expect(fromFlags.container_registry.container_registry_metadata).to.deep.equal({ owner: 'ops' });
    });

    it('gets one as fields and as JSON', async () => {
      const human = await cli(['registries', 'get', registryId]);
      expect(human.code, human.stderr).to.equal(0);
      expect(human.stdout).to.match(/^container_registry_name: +internal-ai-registry$/m);
      const json = parsed<Record<string, unknown>>(await cli(['registries', 'get', registryId, '--json']));
      expect(json.container_registry_id).to.equal(registryId);
      expect(json.container_registry_tags).to.deep.equal(seed.container_registry_tags);
    });

    it('lists as a table and as a JSON array', async () => {
      const human = await cli(['registries', 'list']);
      expect(human.code, human.stderr).to.equal(0);
      const lines = human.stdout.trimEnd().split('\n');
      expect(lines[0]).to.match(/^ID +NAME +URL +TAGS$/);
      expect(lines).to.have.length(4);
      expect(human.stdout).to.include('internal-ai-registry');
      const json = parsed<Array<Record<string, unknown>>>(await cli(['registries', 'list', '--json']));
      expect(json.map((r) => r.container_registry_name).sort()).to.deep.equal([
        'down-one',
        'from-stdin',
        'internal-ai-registry',
      ]);
      const page = await cli([
        'registries',
        'list',
        '--limit',
        '1',
        '--sort',
        'container_registry_name',
        '--json',
      ]);
      expect(
        parsed<Array<Record<string, unknown>>>(page).map((r) => r.container_registry_name),
      ).to.deep.equal(['down-one']);
      expect(page.stderr).to.equal('showing 1-1 of 3; --all for every one, --skip 1 for the next page\n');
    });

    it('updates with --set, --set-string, --unset and an update file', async () => {
      const updated = parsed<Record<string, unknown>>(
        await cli([
          'registries',
          'update',
          registryId,
          '--set',
          'container_registry_metadata.replicas=3',
          '--set-string',
          'container_registry_metadata.zone=42',
          '--unset',
          'container_registry_metadata.region',
          '--json',
        ]),
      );
      expect(updated.container_registry_metadata).to.deep.equal({
        environment: 'production',
        owner: 'mlops-team',
        replicas: 3,
        zone: '42',
      });
      const file = path.join(dir, 'update.json');
      await writeFile(file, JSON.stringify({ $addToSet: { container_registry_tags: 'cli' } }));
      const human = await cli(['registries', 'update', registryId, '--file', file]);
      expect(human.code, human.stderr).to.equal(0);
      expect(human.stdout).to.equal(`updated ${registryId}\n`);
      expect((await catalog.store.get(registryId))?.document.container_registry_tags).to.include('cli');
    });

    it('queries with a filter, from the argument and from standard input', async () => {
      const byTag = parsed<Array<Record<string, unknown>>>(
        await cli(['registries', 'query', '{"container_registry_tags": {"$in": ["down"]}}', '--json']),
      );
      expect(byTag.map((r) => r.container_registry_name)).to.deep.equal(['down-one']);
      const fromStdin = parsed<Array<Record<string, unknown>>>(
        await cli(
          ['registries', 'query', '--file', '-', '--json'],
          '{"container_registry_metadata.owner": {"$regex": "^mlops"}}',
        ),
      );
      expect(fromStdin.map((r) => r.container_registry_id)).to.deep.equal([registryId]);
    });

    it('walks every page with --all (1,000 per request), as JSON and as a table', async () => {
      for (let i = 0; i < 1_050; i++) {
        await catalog.catalog.registries.create(
          {
            container_registry_name: `bulk-${String(i).padStart(4, '0')}`,
            container_registry_public_url: 'http://127.0.0.1:9',
            container_registry_tags: ['bulk'],
          },
          { verify: false },
        );
      }
      const filter = '{"container_registry_tags": "bulk"}';
      const all = parsed<Array<Record<string, unknown>>>(
        await cli(['registries', 'query', filter, '--all', '--sort', 'container_registry_name', '--json']),
      );
      expect(all).to.have.length(1_050);
      expect(all.map((r) => r.container_registry_name)).to.deep.equal(
        Array.from({ length: 1_050 }, (_, i) => `bulk-${String(i).padStart(4, '0')}`),
      );
      const table = await cli(['registries', 'query', filter, '--all']);
      expect(table.code, table.stderr).to.equal(0);
      expect(table.stdout.trimEnd().split('\n')).to.have.length(1_051);
      const listed = parsed<unknown[]>(await cli(['registries', 'list', '--all', '--json']));
      expect(listed).to.have.length(1_053);
      for (const { container_registry_id: id } of all)
        await catalog.catalog.registries.delete(String(id), { ifMatch: undefined });
    });
  });

  describe('health and images', () => {
    it('probes a registry: healthy exits 0, down exits 6; lists the last statuses', async () => {
      const healthy = parsed<Record<string, unknown>>(await cli(['health', registryId, '--json']));
      expect(healthy).to.include({ status: 'healthy', reachable: true, url: registry.url });
      const human = await cli(['health', registryId, '--cached']);
      expect(human.code, human.stderr).to.equal(0);
      expect(human.stdout).to.match(/^status: +healthy$/m);

      const [down] = parsed<Array<{ container_registry_id: string }>>(
        await cli(['registries', 'query', '{"container_registry_name": "down-one"}', '--json']),
      );
      const unreachable = await cli(['health', down!.container_registry_id]);
      expect(unreachable.code).to.equal(6);
      expect(unreachable.stdout).to.match(/^status: +unreachable$/m);

      const statuses = parsed<Array<Record<string, unknown>>>(await cli(['health', '--json']));
      expect(statuses.map((s) => [s.container_registry_id, s.status]).sort()).to.deep.equal(
        [
          [registryId, 'healthy'],
          [down!.container_registry_id, 'unreachable'],
        ].sort(),
      );
      const table = await cli(['health', '--all']);
      expect(table.stdout).to.match(/^ID +STATUS +CHECKED$/m);
    });

    it('queries images and resolves one to pull commands', async () => {
      await catalog.catalog.images!.crawlNow(registryId);
      const records = parsed<Array<Record<string, unknown>>>(
        await cli(['images', 'query', '{"repository": "team/app"}', '--json']),
      );
      expect(records.map((r) => [r.tag, r.pull_reference])).to.deep.equal([
        ['1.0', `${registry.host}/team/app:1.0`],
      ]);
      const table = await cli(['images', 'query']);
      expect(table.stdout).to.match(/^PULL REFERENCE +DIGEST +PLATFORMS +SIGNED +REGISTRY$/m);
      expect(table.stdout).to.include('linux/amd64');

      const resolved = parsed<{ candidates: Array<Record<string, unknown>> }>(
        await cli(['images', 'resolve', 'team/app:1.0', '--platform', 'linux/amd64', '--json']),
      );
      expect(resolved.candidates.map((c) => [c.container_registry_id, c.status])).to.deep.equal([
        [registryId, 'healthy'],
      ]);
      const human = await cli(['images', 'resolve', 'team/app:1.0']);
      expect(human.code, human.stderr).to.equal(0);
      expect(human.stdout).to.include(`docker pull ${registry.host}/team/app:1.0`);
      expectFailure(await cli(['images', 'resolve', 'team/absent:1.0']), 2, /^error: .*team\/absent/);
    });
  });

  describe('failures: one line on stderr, an exit status scripts can use', () => {
    it('bad input is 1: bad JSON, a filter the catalog refuses, a bad flag, a bad id, a bad URL', async () => {
      const cases: Array<[string[], string | undefined, RegExp]> = [
        [['registries', 'query', '{"oops"'], undefined, /^error: the filter is not valid JSON/],
        [['registries', 'query', '{"$where": "1"}'], undefined, /^error: .*\$where/],
        [['registries', 'create', '--file', '-'], 'not json', /standard input is not valid JSON/],
        [['registries', 'create', '--name', 'no-url'], undefined, /^error: .*container_registry_public_url/],
        [['registries', 'list', '--bogus'], undefined, /^error: unknown option '--bogus'/],
        [
          ['registries', 'list', '--all', '--limit', '5'],
          undefined,
          /^error: option '--all' cannot be used with/,
        ],
        [['registries', 'get', '../healthz'], undefined, /^error: not a registry id/],
        [['registries', 'update', registryId], undefined, /^error: nothing to update/],
        [['images', 'resolve'], undefined, /^error: give a reference or --digest/],
        [
          ['registries', 'list', '--url', 'http://user:pw@127.0.0.1:1'],
          undefined,
          /^error: --url must not carry credentials/,
        ],
        [['registries', 'list', '--url', 'ftp://127.0.0.1'], undefined, /^error: --url must be http/],
      ];
      // In parallel: each is a process of its own.
      const runs = await Promise.all(cases.map(([args, stdin]) => cli(args, stdin)));
      runs.forEach((run, i) => expectFailure(run, 1, cases[i]![2]));
    });

    it('an unknown id is 2 (get, update, delete, health); a duplicate is 5', async () => {
      const unknown = randomUUID();
      const runs = await Promise.all(
        [
          ['registries', 'get', unknown],
          ['registries', 'update', unknown, '--set', 'container_registry_name=x'],
          ['registries', 'delete', unknown],
          ['health', unknown],
        ].map((args) => cli(args)),
      );
      for (const run of runs) expectFailure(run, 2, /^error: .*not found/i);
      const duplicate = await cli([
        'registries',
        'create',
        '--id',
        registryId,
        '--name',
        'again',
        '--public-url',
        'http://127.0.0.1:9',
      ]);
      expectFailure(duplicate, 5, /^error: /);
    });

    it('a bad token is 4, a read token writing is 4, and no token is ever printed', async () => {
      const wrong = `aios_${'x'.repeat(43)}`;
      const bad = await cli(['registries', 'list'], undefined, { AIOS_CATALOG_TOKEN: wrong });
      expectFailure(bad, 4, /^error: /);
      expect(bad.stderr).not.to.include(wrong);
      const none = await runCli(['registries', 'list'], { AIOS_CATALOG_URL: server.url });
      expectFailure(none, 4, /^error: /);
      const tokenFile = path.join(dir, 'reader-token');
      await writeFile(tokenFile, `${reader.token}\n`);
      const read = await cli(['registries', 'list', '--token-file', tokenFile, '--json']);
      expect(parsed<unknown[]>(read)).to.have.length(3);
      const refused = await cli(['registries', 'delete', registryId, '--token-file', tokenFile]);
      expectFailure(refused, 4, /^error: /);
      expect(refused.stderr).not.to.include(reader.token);
      expectFailure(
        await cli(['registries', 'list', '--token-file', path.join(dir, 'absent')]),
        1,
        /^error: cannot read the token file .*ENOENT/,
      );
    });

    it('a catalog that is down is 3, and so is one that does not answer in time', async () => {
      const closed = `http://127.0.0.1:${await freePort()}`;
      expectFailure(
        await cli(['registries', 'list', '--url', closed]),
        3,
        new RegExp(`^error: cannot reach the catalog at ${closed}: ECONNREFUSED`),
      );
      // A server that accepts and never answers.
      const silent = await listen(() => undefined, { host: '127.0.0.1', port: 0 });
      try {
        expectFailure(
          await cli(['registries', 'get', registryId, '--url', silent.url, '--timeout', '300']),
          3,
          /^error: no answer from the catalog at .* within 300 ms/,
        );
      } finally {
        await silent.close(100);
      }
    });

    it('deletes, after which the entry is not found', async () => {
      const deleted = await cli(['registries', 'delete', registryId]);
      expect(deleted.code, deleted.stderr).to.equal(0);
      expect(deleted.stdout).to.equal(`deleted ${registryId}\n`);
      expectFailure(await cli(['registries', 'get', registryId, '--json']), 2, /^error: /);
    });
  });
});
