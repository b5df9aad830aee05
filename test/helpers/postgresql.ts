import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';

/**
 * A throw-away PostgreSQL for FerretDB's PostgreSQL backend (benchmarks only; `npm test` never
 * needs it): initdb into a temp dir, started with pg_ctl on a free 127.0.0.1 port and a socket in
 * that dir, trust auth for the `postgres` role. PostgreSQL refuses to run as root, so as root the
 * cluster belongs to and runs as the `postgres` system user (Debian's package creates it).
 */

export interface PostgresqlServer {
  /** A URL of `database` (created with `createDatabase`) for FerretDB's `-postgresql-url`. */
  url(database: string): string;
  createDatabase(database: string): void;
  /** Process id of the postmaster (its backends are its children). */
  readonly pid: number;
  stop(): void;
}

/** The bin dir of the newest Debian PostgreSQL (/usr/lib/postgresql/<major>/bin). */
function binDir(): string {
  const root = '/usr/lib/postgresql';
  let majors: string[] = [];
  try {
    majors = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  } catch {
    // reported below
  }
  if (majors.length === 0) throw new Error(`no PostgreSQL under ${root}: apt-get install -y postgresql`);
  return path.join(root, majors[0]!, 'bin');
}

export async function startPostgresql(settings: Record<string, string> = {}): Promise<PostgresqlServer> {
  const bin = binDir();
  const dir = mkdtempSync(path.join(tmpdir(), 'postgresql-'));
  const data = path.join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot
    ? {
        uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })),
        gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })),
      }
    : {};
  if (owner.uid !== undefined) chownSync(dir, owner.uid, owner.gid!);
  const run = (tool: string, args: string[]) =>
    execFileSync(path.join(bin, tool), args, { ...owner, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  const options = Object.entries({ listen_addresses: '127.0.0.1', unix_socket_directories: dir, ...settings })
    .map(([key, value]) => `-c ${key}=${value}`)
    .join(' ');
  run('pg_ctl', ['start', '-w', '-D', data, '-l', path.join(dir, 'log'), '-o', `-p ${port} ${options}`]);
  const pid = Number(readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  let stopped = false;
  return {
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    createDatabase: (database) =>
      run('createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', database]),
    pid,
    stop: () => {
      if (stopped) return;
      stopped = true;
      run('pg_ctl', ['stop', '-w', '-m', 'fast', '-D', data]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
