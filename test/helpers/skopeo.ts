import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Runs skopeo against loopback only; no policy file or registries.conf of the host matters. */
export async function skopeo(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('skopeo', ['--insecure-policy', ...args], {
    maxBuffer: 16 * 1024 * 1024,
    timeout: 60_000,
  });
  return stdout;
}

/** skopeo's failure message (stderr) or 'ok' when the command succeeded. */
export async function skopeoError(...args: string[]): Promise<string> {
  return skopeo(...args).then(
    () => 'ok',
    (failure: Error & { stderr?: string }) => failure.stderr ?? failure.message,
  );
}
