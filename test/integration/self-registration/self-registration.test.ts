import { expect } from 'chai';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createToken } from '../../../src/catalog/access/tokens.js';
import { loopbackCatalogEnv } from '../../helpers/probe-targets.js';
import { freePort } from '../../helpers/ports.js';
import { OciLayoutWriter } from '../../helpers/registry-oci-layout.js';
import { skopeo } from '../../helpers/skopeo.js';
import { spawnRegistry } from '../../helpers/registry.js';
import { spawnCli, type CliProcess } from '../../helpers/spawn-cli.js';
import { tempDir } from '../../helpers/temp-dirs.js';

/**
 * A real bundled registry (`registry --register-with`) registering with a real catalog
 * (`serve`), both spawned: the entry, heartbeats, staleness after SIGKILL, a restart, replicas,
 * push events in the image index without a crawl, and hostile callers. Everything on loopback.
 */

const HEARTBEAT_S = 0.5;
const admin = createToken('ops', 'admin');
const registrar = createToken('registry-a', 'register');
const intruder = createToken('registry-b', 'register');

interface Instance {
  instance_id: string;
  status: string;
  repositories: number | null;
  storage: { free_bytes: number | null };
}
interface Health {
  status: string;
  heartbeat: { status: string; last_seen: string; instances: Instance[] };
}
type Row = Record<string, unknown>;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('self-registration: a bundled registry with a real catalog', function () {
  this.timeout(120_000);
  let work: string;
  let catalog: CliProcess;
  let catalogUrl: string;
  const children: CliProcess[] = [];

  const as = (token: string, body?: unknown, raw?: string) => ({
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(raw !== undefined ? { body: raw } : body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const api = async <T = unknown>(
    method: string,
    route: string,
    token = admin.token,
    body?: unknown,
    raw?: string,
  ) => {
    const response = await fetch(`${catalogUrl}${route}`, { method, ...as(token, body, raw) });
    const text = await response.text();
    return { status: response.status, body: JSON.parse(text) as { data: T; error?: string } };
  };
  const health = async (id: string) => (await api<Health>('GET', `/check_container_health/${id}`)).body.data;

  async function startRegistry(
    root: string,
    port: number,
    publicPort = port,
    catalogBase = catalogUrl,
    wait = true,
  ): Promise<{ process: CliProcess; id: string }> {
    const tokenFile = path.join(work, 'registrar-token');
    await fs.writeFile(tokenFile, `${registrar.token}\n`);
    const registry = await spawnRegistry(
      root,
      [
        '--register-with',
        catalogBase,
        '--register-token-file',
        tokenFile,
        '--public-url',
        `http://127.0.0.1:${publicPort}`,
        '--register-name',
        'self-registered',
        '--register-tags',
        'team-a,ci',
      ],
      { port, env: { LOG_LEVEL: 'info', REGISTER_HEARTBEAT_S: String(HEARTBEAT_S) } },
    );
    const child = registry.cli;
    children.push(child);
    if (!wait) return { process: child, id: '' };
    const line = await child.waitForLog((entry) => entry.msg === 'registered with the catalog', 60_000);
    return { process: child, id: String(line.registryId) };
  }

  before(async function () {
    work = await tempDir('self-registration-');
    await fs.writeFile(path.join(work, 'tokens'), [admin.entry, registrar.entry, intruder.entry].join('\n'));
    catalog = spawnCli(['serve'], catalogEnv('0', path.join(work, 'catalog')));
    catalogUrl = String((await catalog.waitForLog((line) => line.msg === 'catalog listening', 60_000)).url);
  });

  const catalogEnv = (port: string, dataDir: string) =>
    loopbackCatalogEnv({
      PORT: port,
      DATA_DIR: dataDir,
      HEARTBEAT_WATCH_INTERVAL_MS: '100',
      HEALTH_PROBE_TIMEOUT_MS: '1000',
      API_TOKENS_FILE: path.join(work, 'tokens'),
    });

  after(async () => {
    for (const child of [...children, catalog]) {
      if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGKILL');
      await child.exited;
    }
    await fs.rm(work, { recursive: true, force: true });
  });

  it('registers, heartbeats, turns stale after SIGKILL (probe: unreachable), and a restart reuses the entry', async () => {
    const root = path.join(work, 'root-a');
    const port = await freePort();
    const first = await startRegistry(root, port);
    const entry = await api<Row>('GET', `/container_registry/${first.id}`);
    expect(entry.status).to.equal(200);
    expect(entry.body.data).to.include({
      container_registry_name: 'self-registered',
      container_registry_public_url: `http://127.0.0.1:${port}`,
    });
    expect(entry.body.data.container_registry_tags).to.deep.equal(['team-a', 'ci']);

    await sleep(HEARTBEAT_S * 1000 * 1.5);
    const live = await health(first.id);
    expect(live.status).to.equal('healthy');
    expect(live.heartbeat.status).to.equal('live');
    expect(live.heartbeat.instances).to.have.length(1);
    expect(live.heartbeat.instances[0]).to.include({ status: 'live', repositories: 0 });
    expect(live.heartbeat.instances[0]!.storage.free_bytes).to.be.a('number');
    await sleep(HEARTBEAT_S * 1000 * 2);
    const later = await health(first.id);
    expect(Date.parse(later.heartbeat.last_seen)).to.be.greaterThan(Date.parse(live.heartbeat.last_seen));

    first.process.child.kill('SIGKILL');
    await first.process.exited;
    // The watch announces the transition once; the report shows it, and the probe decides health.
    await catalog.waitForLog(
      (line) => line.msg === 'registry heartbeat stale' && line.registryId === first.id,
      HEARTBEAT_S * 1000 * 3 + 3000,
    );
    const stale = await health(first.id);
    expect(stale.heartbeat.status).to.equal('stale');
    expect(stale.status).to.equal('unreachable');

    // A heartbeat never turns an unreachable registry healthy.
    const forged = await api('POST', `/container_registry/${first.id}/heartbeat`, registrar.token, {
      instance_id: 'forged',
      status: 'live',
      version: '0',
      interval_s: 30,
      started_at: new Date().toISOString(),
      storage: { used_bytes: null, free_bytes: null },
      repositories: null,
    });
    expect(forged.status).to.equal(200);
    const stillDown = await health(first.id);
    expect(stillDown.heartbeat.status).to.equal('live');
    expect(stillDown.status).to.equal('unreachable');

    const second = await startRegistry(root, port);
    expect(second.id).to.equal(first.id);
    const listed = await api<Row[]>('POST', '/container_registries', admin.token, {
      container_registry_public_url: `http://127.0.0.1:${port}`,
    });
    expect(listed.body.data).to.have.length(1);
    await sleep(HEARTBEAT_S * 1000);
    expect((await health(first.id)).status).to.equal('healthy');

    // SIGTERM: a draining heartbeat before the registry stops.
    second.process.child.kill('SIGTERM');
    await second.process.waitForLog((line) => line.msg === 'draining heartbeat sent' && line.status === 200);
    const drained = await health(first.id);
    await second.process.exited;
    const instance = drained.heartbeat.instances.find((item) => item.instance_id !== 'forged');
    expect(instance?.status).to.equal('draining');
  });

  it('two replicas on one storage root share one entry, as two instances', async () => {
    const root = path.join(work, 'root-replicas');
    const [front, other] = [await freePort(), await freePort()];
    const one = await startRegistry(root, front);
    const two = await startRegistry(root, other, front); // behind the same public URL
    expect(two.id).to.equal(one.id);
    await sleep(HEARTBEAT_S * 1000 * 1.5);
    const report = await health(one.id);
    expect(report.heartbeat.instances).to.have.length(2);
    expect(report.heartbeat.instances.map((item) => item.status)).to.deep.equal(['live', 'live']);
    const listed = await api<Row[]>('POST', '/container_registries', admin.token, {
      container_registry_public_url: `http://127.0.0.1:${front}`,
    });
    expect(listed.body.data).to.have.length(1);
  });

  it('a push with skopeo is resolvable within a second, without a crawl; a tag delete removes it', async () => {
    const root = path.join(work, 'root-push');
    const port = await freePort();
    const { id } = await startRegistry(root, port);
    const layout = new OciLayoutWriter(path.join(work, 'layout'));
    const image = layout.image(2, 'arm64');
    const multi = layout.index([layout.image(1, 'amd64'), layout.image(1, 'arm64')]);
    await layout.write({ app: image, multi });
    await skopeo(
      'copy',
      '--dest-tls-verify=false',
      `oci:${layout.dir}:app`,
      `docker://127.0.0.1:${port}/team/app:1.0`,
    );
    const pushed = Date.now();
    let found: { status: number; body: { data: { candidates: Row[] } } } | undefined;
    while (Date.now() - pushed < 1000) {
      found = await api<{ candidates: Row[] }>('GET', '/resolve_image?reference=team/app:1.0');
      if (found.status === 200) break;
      await sleep(20);
    }
    expect(found?.status, 'resolvable within 1 s of the push').to.equal(200);
    expect(found!.body.data.candidates[0]).to.include({
      container_registry_id: id,
      pull_reference: `127.0.0.1:${port}/team/app:1.0`,
      digest: image.digest,
    });
    const records = await api<Array<Row & { tag: string | null }>>('GET', `/container_registry/${id}/images`);
    const record = records.body.data.find((item) => item.tag === '1.0')!;
    expect(record).to.include({ source: 'event', media_type: 'application/vnd.oci.image.manifest.v1+json' });
    expect(record.platforms).to.deep.equal([{ os: 'linux', architecture: 'arm64', digest: image.digest }]);
    expect(record.size).to.be.greaterThan(2 * 64 * 1024);

    // An index: its platforms from its entries, its size over the children pushed with it.
    await skopeo(
      'copy',
      '--all',
      '--dest-tls-verify=false',
      `oci:${layout.dir}:multi`,
      `docker://127.0.0.1:${port}/team/multi:2`,
    );
    let indexed: (Row & { platforms?: Array<{ architecture: string }>; size?: number }) | undefined;
    for (const started = Date.now(); Date.now() - started < 1000 && indexed === undefined; await sleep(20)) {
      const page = await api<Array<Row & { tag: string | null }>>('GET', `/container_registry/${id}/images`);
      indexed = page.body.data.find((item) => item.repository === 'team/multi' && item.tag === '2');
    }
    expect(indexed?.digest).to.equal(multi.digest);
    expect(indexed?.platforms?.map((platform) => platform.architecture)).to.deep.equal(['amd64', 'arm64']);
    expect(indexed?.size).to.be.greaterThan(2 * 64 * 1024);

    const deleted = await fetch(`http://127.0.0.1:${port}/v2/team/app/manifests/1.0`, { method: 'DELETE' });
    expect(deleted.status).to.equal(202);
    const gone = Date.now();
    let status = 200;
    while (Date.now() - gone < 1000 && status === 200) {
      status = (await api('GET', '/resolve_image?reference=team/app:1.0')).status;
      if (status === 200) await sleep(20);
    }
    expect(status).to.equal(404);

    // A delete by digest removes the records of that digest (the index and its tag).
    const byDigest = await fetch(`http://127.0.0.1:${port}/v2/team/multi/manifests/${multi.digest}`, {
      method: 'DELETE',
    });
    expect(byDigest.status).to.equal(202);
    let left = 1;
    for (const started = Date.now(); Date.now() - started < 1000 && left > 0; await sleep(20)) {
      const page = await api<Array<Row & { digest: string }>>('GET', `/container_registry/${id}/images`);
      left = page.body.data.filter((item) => item.digest === multi.digest).length;
    }
    expect(left).to.equal(0);
  });

  it('serves pushes while the catalog is down, then registers and delivers the queued events', async () => {
    const catalogPort = await freePort();
    const port = await freePort();
    const down = `http://127.0.0.1:${catalogPort}`;
    const registry = await startRegistry(path.join(work, 'root-down'), port, port, down, false);
    await registry.process.waitForLog(
      (line) => line.msg === 'catalog unreachable for registration; retrying',
    );
    const layout = new OciLayoutWriter(path.join(work, 'layout-down'));
    await layout.write({ app: layout.image(1, 'amd64') });
    await skopeo(
      'copy',
      '--dest-tls-verify=false',
      `oci:${layout.dir}:app`,
      `docker://127.0.0.1:${port}/queued/app:1`,
    );

    const late = spawnCli(['serve'], catalogEnv(String(catalogPort), path.join(work, 'catalog-late')));
    children.push(late);
    await late.waitForLog((line) => line.msg === 'catalog listening', 60_000);
    const registered = await registry.process.waitForLog(
      (line) => line.msg === 'registered with the catalog',
      60_000,
    );
    const deadline = Date.now() + 5_000;
    let status = 0;
    while (Date.now() < deadline && status !== 200) {
      const answer = await fetch(`${down}/resolve_image?reference=queued/app:1`, as(admin.token));
      status = answer.status;
      await answer.arrayBuffer();
      if (status !== 200) await sleep(50);
    }
    expect(status, 'the queued push event reached the catalog').to.equal(200);
    expect(String(registered.registryId)).to.match(/^[0-9a-f-]{36}$/);
  });

  it('refuses hostile registrations, heartbeats and events, and changes nothing', async () => {
    const root = path.join(work, 'root-hostile');
    const port = await freePort();
    const { id } = await startRegistry(root, port);
    const before = await api('GET', `/container_registry/${id}`);
    const imagesBefore = await api('GET', `/container_registry/${id}/images`);
    const beat = {
      instance_id: 'intruder',
      status: 'live',
      version: '0',
      interval_s: 30,
      started_at: new Date().toISOString(),
      storage: { used_bytes: 1, free_bytes: 1 },
      repositories: 1,
    };
    const push = {
      events: [
        {
          action: 'push',
          repository: 'evil/app',
          tag: 'latest',
          digest: `sha256:${'a'.repeat(64)}`,
          media_type: 'application/vnd.oci.image.manifest.v1+json',
          size: 1,
          platforms: [],
          timestamp: new Date().toISOString(),
        },
      ],
    };
    // Another registry's token: its register role is bound to the entry it registered.
    expect((await api('POST', `/container_registry/${id}/heartbeat`, intruder.token, beat)).status).to.equal(
      403,
    );
    expect((await api('POST', `/container_registry/${id}/events`, intruder.token, push)).status).to.equal(
      403,
    );
    const takeover = await api('PUT', `/container_registry/${id}/registration`, intruder.token, {
      container_registry_name: 'mine now',
      container_registry_public_url: 'http://127.0.0.1:9',
    });
    expect(takeover.status).to.equal(403);
    // An entry made by hand cannot be claimed by a register token.
    const manual = await api<{ id: string }>('POST', '/container_registry', admin.token, {
      container_registry_name: 'by hand',
      container_registry_public_url: 'http://127.0.0.1:9',
    });
    const manualId = String(manual.body.data.id);
    for (const [route, body] of [
      ['registration', { container_registry_name: 'x', container_registry_public_url: 'http://127.0.0.1:9' }],
      ['heartbeat', beat],
      ['events', push],
    ] as const) {
      const method = route === 'registration' ? 'PUT' : 'POST';
      expect(
        (await api(method, `/container_registry/${manualId}/${route}`, registrar.token, body)).status,
      ).to.equal(403);
    }
    // The register role cannot change or delete entries otherwise.
    expect(
      (await api('PUT', `/container_registry/${id}`, registrar.token, { container_registry_name: 'x' }))
        .status,
    ).to.equal(403);
    expect((await api('DELETE', `/container_registry/${id}`, registrar.token)).status).to.equal(403);

    // Malformed, oversized and out-of-policy bodies.
    const malformed: Array<[string, string, unknown, string?]> = [
      ['POST', `/container_registry/${id}/heartbeat`, undefined, '{"instance_id":'],
      ['POST', `/container_registry/${id}/heartbeat`, { ...beat, status: 'healthy' }],
      ['POST', `/container_registry/${id}/heartbeat`, { ...beat, extra: 1 }],
      ['POST', `/container_registry/${id}/heartbeat`, { ...beat, instance_id: '../../etc' }],
      ['POST', `/container_registry/${id}/events`, { events: [] }],
      [
        'POST',
        `/container_registry/${id}/events`,
        { events: [{ ...push.events[0], repository: 'UP/../x' }] },
      ],
      ['POST', `/container_registry/${id}/events`, { events: [{ ...push.events[0], size: -1 }] }],
      [
        'POST',
        `/container_registry/${id}/events`,
        { events: [{ action: 'delete', repository: 'a', timestamp: new Date().toISOString() }] },
      ],
      [
        'POST',
        `/container_registry/${id}/events`,
        { events: Array.from({ length: 501 }, () => push.events[0]) },
      ],
      [
        'POST',
        `/container_registry/${id}/events`,
        { events: [{ ...push.events[0], digest: 'sha256:$where' }] },
      ],
      ['POST', '/container_registry/not-a-uuid/heartbeat', beat],
      ['PUT', `/container_registry/${id}/registration`, { container_registry_name: 'x' }],
      [
        'PUT',
        `/container_registry/${id}/registration`,
        { container_registry_name: 'x', container_registry_public_url: 'ftp://x' },
      ],
    ];
    for (const [method, route, body, raw] of malformed) {
      const answer = await api(method, route, registrar.token, body, raw);
      expect(answer.status, `${method} ${route} ${raw ?? JSON.stringify(body).slice(0, 80)}`).to.equal(400);
    }
    const huge = await api(
      'POST',
      `/container_registry/${id}/events`,
      registrar.token,
      undefined,
      `{"events":[${'"x",'.repeat(600_000)}"x"]}`,
    );
    expect(huge.status).to.equal(413);
    // The probe's address policy applies to the URL a registration stores (never contacted).
    const fresh = '00000000-0000-4000-8000-000000000001';
    const metadata = await api('PUT', `/container_registry/${fresh}/registration`, registrar.token, {
      container_registry_name: 'metadata',
      container_registry_public_url: 'http://169.254.169.254',
    });
    expect(metadata.status).to.equal(422);
    expect((await api('GET', `/container_registry/${fresh}`)).status).to.equal(404);
    // An unknown id: 404, nothing created.
    expect(
      (await api('POST', `/container_registry/${fresh}/heartbeat`, registrar.token, beat)).status,
    ).to.equal(404);

    const after = await api('GET', `/container_registry/${id}`);
    expect(after.body.data).to.deep.equal(before.body.data);
    expect((await api('GET', `/container_registry/${id}/images`)).body.data).to.deep.equal(
      imagesBefore.body.data,
    );
    const report = await health(id);
    expect(report.heartbeat.instances.map((item) => item.instance_id)).to.not.include('intruder');
  });
});
