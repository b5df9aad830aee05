/**
 * `npm run bench -- images [--repos 1000] [--tags 10]`: one crawl of a loopback registry holding
 * `repos` x `tags` images (each tag its own manifest), then a recrawl of the unchanged registry
 * knowing the first crawl's records, against the floor of the same number of sequential HEADs
 * of manifests over one keep-alive connection. The registry is a minimal
 * distribution-API server in a child process (it serves from memory, so the crawler's cost is
 * what is measured).
 */
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { AddressPolicy } from '../../src/catalog/health/address-policy.js';
import { createCrawler, type KnownTag } from '../../src/catalog/health/crawl.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const REPOS = option('repos', 1000);
const TAGS = option('tags', 10);

if (process.env.BENCH_IMAGES_SERVER === '1') {
  serveRegistry();
} else {
  await main();
}

function serveRegistry(): void {
  const config = Buffer.from('{"os":"linux","architecture":"amd64"}');
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const manifests = new Map<string, { body: Buffer; digest: string }>();
  const manifestOf = (repo: string, tag: string) => {
    const key = `${repo}:${tag}`;
    let found = manifests.get(key);
    if (!found) {
      const body = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: {
            mediaType: 'application/vnd.oci.image.config.v1+json',
            digest: configDigest,
            size: config.length,
          },
          layers: [],
          annotations: { key },
        }),
      );
      found = { body, digest: `sha256:${createHash('sha256').update(body).digest('hex')}` };
      manifests.set(key, found);
      manifests.set(`${repo}@${found.digest}`, found);
    }
    return found;
  };
  const repos = Array.from({ length: REPOS }, (_, i) => `bench/r${String(i).padStart(5, '0')}`);
  const tags = Array.from({ length: TAGS }, (_, i) => `v${i}`);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (body: unknown) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (url.pathname === '/v2/') return json({});
    if (url.pathname === '/v2/_catalog') {
      const last = url.searchParams.get('last');
      const start = last ? repos.indexOf(last) + 1 : 0;
      const page = repos.slice(start, start + 1000);
      if (start + 1000 < repos.length)
        res.setHeader('link', `</v2/_catalog?n=1000&last=${page.at(-1)}>; rel="next"`);
      return json({ repositories: page });
    }
    const match = /^\/v2\/(.+)\/(tags\/list|manifests|blobs|referrers)\/(.*)$/.exec(
      url.pathname + (url.pathname.endsWith('/list') ? '/' : ''),
    );
    if (!match) return res.writeHead(404).end();
    const [, repo, kind, ref] = match;
    if (kind === 'tags/list') return json({ name: repo, tags });
    if (kind === 'blobs') return res.writeHead(200).end(config);
    if (kind === 'referrers') return res.writeHead(404).end('{}');
    const manifest = ref!.startsWith('sha256:') ? manifests.get(`${repo}@${ref}`) : manifestOf(repo!, ref!);
    if (!manifest) return res.writeHead(404).end();
    res.writeHead(200, {
      'content-type': 'application/vnd.oci.image.manifest.v1+json',
      'docker-content-digest': manifest.digest,
      'content-length': String(manifest.body.length),
    });
    res.end(req.method === 'HEAD' ? undefined : manifest.body);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send!((server.address() as AddressInfo).port));
}

async function main(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), process.argv.slice(2), {
    env: { ...process.env, BENCH_IMAGES_SERVER: '1' },
    execArgv: ['--import', 'tsx'],
  });
  const port = await new Promise<number>((resolve) => child.once('message', (m) => resolve(Number(m))));
  const base = `http://127.0.0.1:${port}`;
  try {
    // The floor: the same number of manifest HEADs, one after the other, one keep-alive connection.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const floorStart = performance.now();
    for (let r = 0; r < REPOS; r++)
      for (let t = 0; t < TAGS; t++)
        await new Promise<void>((resolve, reject) => {
          const req = http.request(
            `${base}/v2/bench/r${String(r).padStart(5, '0')}/manifests/v${t}`,
            { method: 'HEAD', agent },
            (res) => {
              res.resume();
              res.on('end', resolve);
            },
          );
          req.on('error', reject);
          req.end();
        });
    const floorMs = performance.now() - floorStart;
    agent.destroy();

    const crawl = createCrawler({
      policy: new AddressPolicy({ allow: ['127.0.0.0/8'], deny: [] }),
      limits: {
        concurrencyPerRegistry: 4,
        requestBudget: 10_000_000,
        timeoutMs: 3_600_000,
        maxManifestBytes: 4 << 20,
        maxRetryAfterMs: 30_000,
        requestTimeoutMs: 30_000,
      },
    });
    const crawlStart = performance.now();
    const outcome = await crawl({ url: base }, {});
    const crawlMs = performance.now() - crawlStart;
    // A recrawl of the same, unchanged content, knowing what the first crawl saw (as the image
    // index does): one HEAD per tag plus the listings.
    const known = new Map<string, Map<string, KnownTag>>();
    for (const image of outcome.images) {
      let tags = known.get(image.repository);
      if (!tags) known.set(image.repository, (tags = new Map()));
      tags.set(image.tag, image);
    }
    const recrawlStart = performance.now();
    const again = await crawl(
      { url: base },
      { known: async (repository) => known.get(repository) ?? new Map() },
    );
    const recrawlMs = performance.now() - recrawlStart;
    console.log(`# images bench: ${REPOS} repositories x ${TAGS} tags, node ${process.version}`);
    console.log('row                         wall ms   requests   errors   x floor');
    console.log(
      `sequential HEAD, keep-alive ${String(Math.round(floorMs)).padEnd(9)} ${String(REPOS * TAGS).padEnd(10)} 0        1.00`,
    );
    console.log(
      `crawl (concurrency 4)       ${String(Math.round(crawlMs)).padEnd(9)} ${String(outcome.requests).padEnd(10)} ${String(outcome.errors.length).padEnd(8)} ${(crawlMs / floorMs).toFixed(2)}`,
    );
    console.log(
      `recrawl, unchanged          ${String(Math.round(recrawlMs)).padEnd(9)} ${String(again.requests).padEnd(10)} ${String(again.errors.length).padEnd(8)} ${(recrawlMs / floorMs).toFixed(2)}`,
    );
    console.log(
      `complete: ${outcome.complete}/${again.complete}, tags read: ${outcome.tags}, records: ${outcome.images.length}; requests per tag: crawl ${(outcome.requests / outcome.tags).toFixed(2)}, recrawl ${(again.requests / again.tags).toFixed(2)}`,
    );
  } finally {
    child.kill();
  }
}
