import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'chai';
import { REPO_ROOT } from '../helpers/registry.js';

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start', function () {
  this.timeout(90_000);

  it('stops the server when npm itself gets SIGTERM (no orphan left running)', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'npm-start-'));
    const npm = spawn('npm', ['start'], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? tmpdir(),
        PORT: '0',
        DATA_DIR: dataDir,
        HEALTH_MONITOR_ENABLED: 'false',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let serverPid: number | undefined;
    try {
      const exited = new Promise<void>((resolve) => npm.on('exit', () => resolve()));
      serverPid = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the catalog did not start within 60 s')), 60_000);
        createInterface({ input: npm.stdout }).on('line', (text) => {
          if (!text.startsWith('{')) return;
          const line = JSON.parse(text) as { msg?: string; pid?: number };
          if (line.msg === 'catalog listening' && line.pid !== undefined) {
            clearTimeout(timer);
            resolve(line.pid);
          }
        });
        void exited.then(() => reject(new Error('npm start exited before the catalog listened')));
      });
      expect(serverPid).to.not.equal(npm.pid);

      npm.kill('SIGTERM');
      await exited;
      const deadline = Date.now() + 10_000;
      while (isRunning(serverPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(isRunning(serverPid), `server pid ${serverPid} still running after npm's SIGTERM`).to.equal(
        false,
      );
    } finally {
      if (serverPid !== undefined && isRunning(serverPid)) process.kill(serverPid, 'SIGKILL');
      npm.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
