/**
 * Catalog benchmark: requests/s and p50/p99 of get-by-id, create, `$set` update and a `$in`
 * query (limit=100) at 1k and 100k documents, on the embedded store and on MongoDB (FerretDB
 * unless MONGODB_URI is set), beside a bare node:http server answering the same JSON (the
 * ceiling). Each target runs in its own process; the same autocannon settings drive every row.
 *
 *   npm run bench -- catalog [--sizes 1000,100000] [--duration 10] [--stores embedded,mongo]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatRow, load, type LoadOptions } from '../lib/load.js';
import { BENCH_AUTH, documentAt, idAt, TAGS } from './documents.js';

const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));

async function startTarget(
  kind: string,
  size: number,
): Promise<{ child: ChildProcess; url: string; seedSeconds: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', SERVER, kind, String(size)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`bench target ${kind} exited with ${code}`)));
  });
  return { child, ...(JSON.parse(line) as { url: string; seedSeconds: number }) };
}

async function stopTarget(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== 'catalog'),
  options: {
    sizes: { type: 'string', default: '1000,100000' },
    duration: { type: 'string', default: '10' },
    stores: { type: 'string', default: 'embedded,mongo' },
  },
});
const sizes = values.sizes.split(',').map(Number);
const durationSeconds = Number(values.duration);
const widths = [10, 8, 10, 9, 8, 8, 8, 10];
const print = (cells: Array<string | number>) => console.log(formatRow(cells, widths));

const ceiling = await startTarget('ceiling', 0);
const bare = await load({ url: ceiling.url, durationSeconds });
await stopTarget(ceiling.child);
const framework = await startTarget('express', 0);
const expressBare = await load({
  url: framework.url,
  durationSeconds,
  next: () => ({ path: `/container_registry/${idAt(1)}` }),
});
await stopTarget(framework.child);
console.log(
  `# catalog bench: autocannon, 16 connections, ${durationSeconds} s per row, node ${process.version}, targets in their own process`,
);
print(['store', 'docs', 'scenario', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'x ceiling']);
print([
  'node:http',
  '-',
  'same JSON',
  bare.requestsPerSecond.toFixed(0),
  bare.p50Ms,
  bare.p99Ms,
  bare.errors + bare.non2xx,
  '1.00',
]);
print([
  'express 5',
  '-',
  'same JSON',
  expressBare.requestsPerSecond.toFixed(0),
  expressBare.p50Ms,
  expressBare.p99Ms,
  expressBare.errors + expressBare.non2xx,
  (expressBare.requestsPerSecond / bare.requestsPerSecond).toFixed(2),
]);

for (const kind of values.stores.split(',')) {
  for (const size of sizes) {
    const target = await startTarget(kind, size);
    console.log(`# ${kind} store, ${size} documents seeded in ${target.seedSeconds.toFixed(1)} s`);
    const pick = () => idAt(Math.floor(Math.random() * size));
    let next = size;
    const scenarios: Array<[string, Omit<LoadOptions, 'url'>]> = [
      // Reads first, on the seeded documents: the write rows add documents, and on FerretDB they
      // leave a queue of writes still draining when the next row starts.
      ['get-by-id', { next: () => ({ path: `/container_registry/${pick()}` }) }],
      [
        '$in q100',
        {
          method: 'POST',
          next: () => ({
            path: '/container_registries?limit=100',
            body: JSON.stringify({
              container_registry_tags: { $in: [TAGS[Math.floor(Math.random() * TAGS.length)], 't7'] },
            }),
          }),
        },
      ],
      [
        '$in q100 c1',
        {
          connections: 1,
          method: 'POST',
          next: () => ({
            path: '/container_registries?limit=100',
            body: JSON.stringify({
              container_registry_tags: { $in: [TAGS[Math.floor(Math.random() * TAGS.length)], 't7'] },
            }),
          }),
        },
      ],
      [
        '$set',
        {
          method: 'PUT',
          next: () => ({
            path: `/container_registry/${pick()}`,
            body: JSON.stringify({ $set: { 'container_registry_metadata.owner': `o${next++}` } }),
          }),
        },
      ],
      [
        // 16 connections updating the same entry: the contention row of the AIOS comparison.
        '$set 1 id',
        {
          method: 'PUT',
          next: () => ({
            path: `/container_registry/${idAt(0)}`,
            body: JSON.stringify({ $set: { 'container_registry_metadata.owner': `o${next++}` } }),
          }),
        },
      ],
      [
        'create',
        {
          method: 'POST',
          next: () => ({ path: '/container_registry', body: JSON.stringify(documentAt(next++)) }),
        },
      ],
    ];
    for (const [name, options] of scenarios) {
      const result = await load({ ...options, url: target.url, durationSeconds, headers: BENCH_AUTH });
      print([
        kind,
        size,
        name,
        result.requestsPerSecond.toFixed(0),
        result.p50Ms,
        result.p99Ms,
        result.errors + result.non2xx,
        (result.requestsPerSecond / bare.requestsPerSecond).toFixed(2),
      ]);
    }
    await stopTarget(target.child);
  }
}
