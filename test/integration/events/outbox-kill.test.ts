import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { generateSecret } from '../../../src/catalog/events/webhook-signature.js';
import { EmbeddedDatabase } from '../../../src/catalog/store/embedded-collection.js';
import { MongoDatabase } from '../../../src/catalog/store/mongo-collection.js';
import { openRepositories } from '../../../src/catalog/store/open-stores.js';
import { getMongoUri } from '../../helpers/mongo-server.js';
import { spawnCli, type CliProcess } from '../../helpers/spawn-cli.js';
import { distinct, eventually, startReceiver, type Received } from '../../helpers/webhook-receiver.js';

/**
 * The outbox under SIGKILL: a catalog process takes registry creates and updates from several
 * writers and is killed at random moments, several times, then restarted. Afterwards every
 * change the store holds (each version of each registry) has exactly one event delivered (a
 * duplicate delivery carries the same webhook-id and body), and no event describes a change the
 * store never committed (no version past the stored one, no registry the store lacks, and the
 * last event of each registry carries what the store holds).
 */

const WRITERS = 6;
const KILLS = 5;

interface Backend {
  readonly name: 'embedded' | 'mongo';
  env(): Promise<Record<string, string>>;
  /** The registries the store holds, with versions, read directly from the store. */
  read(): Promise<Map<string, { version: number; metadata: unknown }>>;
  cleanup(): Promise<void>;
}

async function embedded(): Promise<Backend> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'catalog-outbox-kill-'));
  return {
    name: 'embedded',
    env: async () => ({ DATA_DIR: dataDir }),
    read: async () => readAll(await EmbeddedDatabase.open(dataDir), 'registries', ''),
    cleanup: () => rm(dataDir, { recursive: true, force: true }),
  };
}

async function mongo(): Promise<Backend> {
  const uri = await getMongoUri();
  const database = `test_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const dataDir = await mkdtemp(path.join(tmpdir(), 'catalog-outbox-kill-'));
  const connect = () => MongoDatabase.connect({ uri, database });
  return {
    name: 'mongo',
    env: async () => ({
      DATA_DIR: dataDir,
      MONGODB_URI: uri,
      MONGODB_DATABASE: database,
      // Webhook secrets are sealed; on MongoDB the key is given, not kept in DATA_DIR.
      CREDENTIALS_KEYS: `test:${randomBytes(32).toString('base64')}`,
    }),
    read: async () => readAll(await connect(), 'container_registry', 'container_registry_'),
    cleanup: async () => {
      const db = await connect();
      await db.dropDatabase();
      await db.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function readAll(
  database: EmbeddedDatabase | MongoDatabase,
  registries: string,
  prefix: string,
): Promise<Map<string, { version: number; metadata: unknown }>> {
  const opened = await openRepositories(database, registries, prefix);
  try {
    const found = new Map<string, { version: number; metadata: unknown }>();
    for (const document of await opened.store.find({}, { sort: [], skip: 0, limit: 100_000 })) {
      const stored = (await opened.store.get(document.container_registry_id))!;
      found.set(document.container_registry_id, {
        version: stored.version,
        metadata: stored.document.container_registry_metadata,
      });
    }
    return found;
  } finally {
    await database.close();
  }
}

for (const open of [embedded, mongo]) {
  describe(`outbox under SIGKILL (${open.name})`, function () {
    this.timeout(300_000);

    it(`delivers an event for every stored change and none for a lost one, across ${KILLS} kills under load`, async () => {
      const backend = await open();
      const secret = generateSecret();
      const receiver = await startReceiver(secret);
      const env = {
        HOST: '127.0.0.1',
        PORT: '0',
        LOG_LEVEL: 'info',
        HEALTH_MONITOR_ENABLED: 'false',
        CRAWL_ENABLED: 'false',
        RATE_LIMIT_PER_SECOND: '0',
        HEALTH_PROBE_ALLOW: '127.0.0.0/8',
        // Every address but loopback (127.0.0.0/8, ::1): the webhook receiver's.
        HEALTH_PROBE_DENY:
          '0.0.0.0/2,64.0.0.0/3,96.0.0.0/4,112.0.0.0/5,120.0.0.0/6,124.0.0.0/7,126.0.0.0/8,128.0.0.0/1,::/128,::2/127,::4/126,::8/125,::10/124,1::/16,2000::/3,fc00::/7,fe80::/10,ff00::/8',
        WEBHOOK_POLL_MS: '50',
        WEBHOOK_TIMEOUT_MS: '1000',
        WEBHOOK_RETRY_INITIAL_MS: '50',
        WEBHOOK_RETRY_MAX_MS: '200',
        ...(await backend.env()),
      };
      const start = async (): Promise<{ cli: CliProcess; url: string }> => {
        const cli = spawnCli(['serve'], env);
        const line = await cli.waitForLog((entry) => entry.msg === 'catalog listening', 60_000);
        return { cli, url: String(line.url) };
      };
      let running: CliProcess | undefined;
      try {
        let { cli, url } = await start();
        running = cli;
        const json = { 'content-type': 'application/json' };
        const hook = await fetch(`${url}/webhooks`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ url: receiver.url, events: ['registry.*'], secret }),
        });
        expect(hook.status).to.equal(201);
        let sequence = 0;
        // A writer creates a registry, updates it a few times, then starts another; it stops at the first failure.
        const writer = async (base: string, name: string): Promise<void> => {
          for (;;) {
            const created = await fetch(`${base}/container_registry`, {
              method: 'POST',
              headers: json,
              body: JSON.stringify({
                container_registry_name: name,
                container_registry_public_url: 'http://127.0.0.1:9',
                container_registry_metadata: { n: sequence++ },
              }),
            }).catch(() => undefined);
            if (created?.status !== 201) return;
            const id = String(((await created.json()) as { data: { id: string } }).data.id);
            for (let update = 0; update < 8; update++) {
              const res = await fetch(`${base}/container_registry/${id}`, {
                method: 'PUT',
                headers: json,
                body: JSON.stringify({ $set: { container_registry_metadata: { n: sequence++ } } }),
              }).catch(() => undefined);
              if (res?.status !== 200) return;
            }
          }
        };
        for (let kill = 0; kill < KILLS; kill++) {
          const writers = Array.from({ length: WRITERS }, (_, w) => writer(url, `kill-${kill}-${w}`));
          await new Promise((resolve) => setTimeout(resolve, randomInt(300, 1500)));
          cli.child.kill('SIGKILL');
          await cli.exited;
          await Promise.all(writers);
          ({ cli, url } = await start());
          running = cli;
        }
        // Nothing writes registries any more (the restart settled what the killed writers left):
        // read the store as it stands, then let the last start deliver what is owed.
        const stored = await backend.read();
        expect(stored.size, 'registries written').to.be.greaterThan(WRITERS);
        const owed = [...stored.values()].reduce((sum, { version }) => sum + version, 0);
        await eventually(
          () => new Set(receiver.received.map((r) => r.id)).size >= owed,
          `${owed} events delivered`,
          60_000,
        ).catch(() => undefined); // the checks below name what is missing
        await new Promise((resolve) => setTimeout(resolve, 1_000)); // time for any extra one to show

        const events = new Map<string, Map<number, Received[]>>();
        for (const r of distinct(receiver.received)) {
          const id = String(r.event.data.container_registry_id);
          const version = Number(r.event.data.version);
          const byVersion = events.get(id) ?? new Map<number, Received[]>();
          byVersion.set(version, [...(byVersion.get(version) ?? []), r]);
          events.set(id, byVersion);
        }
        for (const id of events.keys())
          expect(stored.has(id), `an event for registry ${id}, which the store never held`).to.equal(true);
        for (const [id, { version, metadata }] of stored) {
          const byVersion = events.get(id) ?? new Map<number, Received[]>();
          for (let v = 1; v <= version; v++) {
            const at = byVersion.get(v) ?? [];
            expect(
              at.length,
              `events for ${id} version ${v} of ${version} (seen ${[...byVersion.keys()].join(',')})`,
            ).to.equal(1);
            expect(at[0]!.event.type).to.equal(v === 1 ? 'registry.created' : 'registry.updated');
          }
          expect(Math.max(...byVersion.keys()), `no event past the stored version of ${id}`).to.equal(
            version,
          );
          const last = byVersion.get(version)![0]!.event.data.container_registry as Record<string, unknown>;
          expect(
            last.container_registry_metadata,
            `last event of ${id} is what the store holds`,
          ).to.deep.equal(metadata);
        }
      } finally {
        running?.child.kill('SIGKILL');
        await receiver.close();
        await backend.cleanup();
      }
    });
  });
}
