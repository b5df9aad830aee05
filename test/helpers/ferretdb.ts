import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { buildGoTool } from './go-tools.js';

/**
 * FerretDB 1.24 (MongoDB wire protocol on SQLite) for the tests: built once from
 * test/ferretdb/ with the local Go toolchain into .cache/ferretdb/, rebuilt when its sources
 * change, and started on a free loopback port with its data in a temp dir.
 */

/** Builds the harness unless the cached binary was built from the current sources. */
export function buildFerretDb(): string {
  return buildGoTool('ferretdb');
}

export interface FerretDbServer {
  readonly uri: string;
  /** Process id of FerretDB (benchmarks read its CPU time and memory). */
  readonly pid: number;
  stop(): void;
}

/**
 * Starts FerretDB on a free 127.0.0.1 port, with a fresh SQLite data dir or, given
 * `postgresqlUrl`, on that PostgreSQL database; resolves once it accepts connections.
 */
export async function startFerretDb(options: { postgresqlUrl?: string } = {}): Promise<FerretDbServer> {
  const binary = buildFerretDb();
  const dir = mkdtempSync(path.join(tmpdir(), 'ferretdb-'));
  const backend = options.postgresqlUrl ? ['-postgresql-url', options.postgresqlUrl] : ['-dir', dir];
  const child = spawn(binary, ['-listen', '127.0.0.1:0', ...backend], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();

    if (process.env.FERRETDB_DEBUG) process.stderr.write(chunk);
  });
  const uri = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`FerretDB did not start within 30 s: ${stderr}`)),
      30_000,
    );
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      resolve(line.trim());
    });
    child.once('exit', (code) => reject(new Error(`FerretDB exited with ${code}: ${stderr}`)));
  });
  let stopped = false;
  return {
    uri,
    pid: child.pid!,
    stop: () => {
      if (stopped) return;
      stopped = true;
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
