/**
 * Blob transfers with curl streaming the bytes, so the client is never the bottleneck (the
 * registry and token benchmarks). The small requests around them go through `fetch`.
 */
import { spawn } from 'node:child_process';

/** Runs a command to completion (asynchronously, so RSS sampling keeps running); its stdout. */
export function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${command} exited with ${code}`)),
    );
  });
}

const headerArgs = (headers: Record<string, string>) =>
  Object.entries(headers).flatMap(([name, value]) => ['-H', `${name}: ${value}`]);

/** Pushes `file` as the containers/image client does: POST, one curl-streamed PATCH, PUT ?digest=. */
export async function curlPush(
  base: string,
  name: string,
  file: string,
  digest: string,
  headers: Record<string, string> = {},
): Promise<void> {
  const started = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST', headers });
  await started.arrayBuffer();
  if (started.status !== 202) throw new Error(`POST ${started.status}`);
  const upload = new URL(started.headers.get('location') ?? '', base).href;
  const answer = await run('curl', [
    '-sS',
    '-f',
    '-D',
    '-',
    '-o',
    '/dev/null',
    '-X',
    'PATCH',
    ...headerArgs(headers),
    '-H',
    'Content-Type: application/octet-stream',
    '-T',
    file,
    upload,
  ]);
  const location = /^location: (.*)$/im.exec(answer)?.[1]?.trim();
  if (location === undefined) throw new Error('PATCH answered no Location');
  const url = new URL(location, base);
  url.searchParams.set('digest', digest);
  const put = await fetch(url, { method: 'PUT', headers });
  await put.arrayBuffer();
  if (put.status !== 201) throw new Error(`PUT ${put.status}`);
}

/** Pulls a blob with curl into /dev/null. */
export async function curlPull(
  base: string,
  name: string,
  digest: string,
  headers: Record<string, string> = {},
): Promise<void> {
  await run('curl', [
    '-sS',
    '-f',
    '-o',
    '/dev/null',
    ...headerArgs(headers),
    `${base}/v2/${name}/blobs/${digest}`,
  ]);
}
