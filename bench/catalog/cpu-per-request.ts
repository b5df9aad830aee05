/**
 * CPU time per GET by id of a bench target (its process's utime + stime from /proc, in 10 ms
 * ticks), beside the bare node:http ceiling, less sensitive than requests/s to a machine shared
 * with other work. `ROOT` runs another checkout's targets (e.g. main, for a before/after):
 *
 *   node --import tsx bench/catalog/cpu-per-request.ts [requests] [rounds]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { BENCH_AUTH, idAt } from './documents.js';
const root = process.env.ROOT ?? fileURLToPath(new URL('../..', import.meta.url));
const cpu = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
};
async function run(kind: string, amount: number) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', `${root}/bench/catalog/server.ts`, kind, '1000'],
    { stdio: ['ignore', 'pipe', 'inherit'], cwd: root },
  );
  const line = await new Promise<string>((r) => createInterface({ input: child.stdout! }).once('line', r));
  const { url } = JSON.parse(line);
  const go = (n: number) =>
    autocannon({
      url,
      connections: 16,
      amount: n,
      headers: BENCH_AUTH,
      requests: [
        {
          method: 'GET',
          setupRequest: (r) => ({
            ...r,
            path: `/container_registry/${idAt(Math.floor(Math.random() * 1000))}`,
          }),
        },
      ],
    });
  await go(3000);
  const before = cpu(child.pid!);
  const t0 = Date.now();
  const res = await go(amount);
  const used = cpu(child.pid!) - before;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return {
    kind,
    usPerReq: +(used / amount).toFixed(1),
    reqs: res.requests.average,
    non2xx: res.non2xx,
    wall: Date.now() - t0,
  };
}
const n = Number(process.argv[2] ?? 30000);
for (let i = 0; i < Number(process.argv[3] ?? 1); i++) {
  const c = await run('ceiling', n);
  const e = await run(process.env.KIND ?? 'embedded', n);
  console.log(
    JSON.stringify(c),
    JSON.stringify(e),
    'cpu ratio ceiling/ours',
    (c.usPerReq / e.usPerReq).toFixed(2),
    'req/s ratio',
    (e.reqs / c.reqs).toFixed(2),
  );
}
