/**
 * Health bench: 1,000 registries on loopback servers, 20% hanging. Reports one monitor sweep
 * with the default 5 s timeout (target: within timeout + 20%), its memory, the sequential sweep
 * the original service did (extrapolated from measured per-probe times), and the p99 latency of
 * GET /container_registry/<id> with and without a sweep in progress.
 *   npm run bench -- health [--registries 1000] [--concurrency 256] [--jitter 0]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { load } from '../lib/load.js';
import { idAt } from '../catalog/documents.js';

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== 'health'),
  options: {
    registries: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '256' },
    jitter: { type: 'string', default: '0' },
  },
});
const count = Number(values.registries);

function start(script: string, args: string[]): { child: ChildProcess; lines: AsyncIterator<string> } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL(script, import.meta.url)), ...args],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return { child, lines: createInterface({ input: child.stdout! })[Symbol.asyncIterator]() };
}
const nextJson = async <T>(lines: AsyncIterator<string>): Promise<T> =>
  JSON.parse((await lines.next()).value as string) as T;

const targets = start('./targets.ts', ['8', '4']);
const targetUrls = await nextJson<{ healthy: string[]; hanging: string[] }>(targets.lines);
const catalog = start('./catalog.ts', [
  JSON.stringify(targetUrls),
  String(count),
  '20',
  values.concurrency,
  values.jitter,
]);
const { url } = await nextJson<{ url: string }>(catalog.lines);
const get = () =>
  load({
    url,
    durationSeconds: 4,
    connections: 8,
    next: () => ({ path: `/container_registry/${idAt(Math.floor(Math.random() * count))}` }),
  });

const idle = await get();
catalog.child.kill('SIGUSR2');
const [during, sweep] = await Promise.all([
  get(),
  nextJson<{ sweepMs: number; rssBeforeMb: number; rssPeakMb: number; claimed: number }>(catalog.lines),
]);
catalog.child.kill('SIGUSR1');
const sequential = await nextJson<{ healthyMs: number; hangingMs: number }>(catalog.lines);
const hangingCount = Math.ceil(count / 5);
const sequentialMs = (count - hangingCount) * sequential.healthyMs + hangingCount * sequential.hangingMs;

console.log(
  `# health bench: ${count} registries, ${hangingCount} hanging, timeout 5000 ms, concurrency ${values.concurrency}, jitter ${values.jitter} ms`,
);
console.log(
  `sweep (monitor)        ${(sweep.sweepMs / 1000).toFixed(2)} s for ${sweep.claimed} probes = ${(sweep.sweepMs / 5000).toFixed(2)}x the timeout (target <= 1.20)`,
);
console.log(
  `memory                 rss ${sweep.rssBeforeMb.toFixed(0)} MB before, peak ${sweep.rssPeakMb.toFixed(0)} MB during the sweep`,
);
console.log(
  `sweep (sequential)     ${(sequentialMs / 1000).toFixed(0)} s extrapolated (${sequential.healthyMs.toFixed(1)} ms per answering registry, ${sequential.hangingMs.toFixed(0)} ms per hanging one) = ${(sequentialMs / sweep.sweepMs).toFixed(0)}x slower`,
);
console.log(
  `GET by id, no sweep    p50 ${idle.p50Ms} ms, p99 ${idle.p99Ms} ms, ${idle.requestsPerSecond.toFixed(0)} req/s`,
);
console.log(
  `GET by id, in a sweep  p50 ${during.p50Ms} ms, p99 ${during.p99Ms} ms, ${during.requestsPerSecond.toFixed(0)} req/s`,
);
catalog.child.kill('SIGTERM');
targets.child.kill('SIGTERM');
