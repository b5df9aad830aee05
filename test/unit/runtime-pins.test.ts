import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

/** A `NAME=value` line of test/setup/node-lts.sh. */
function scriptVariable(name: string): string {
  const match = new RegExp(`^${name}=(\\S+)$`, 'm').exec(read('test/setup/node-lts.sh'));
  if (!match) throw new Error(`test/setup/node-lts.sh sets no ${name}`);
  return match[1]!;
}

describe('runtime pins: the image ships what CI tests', () => {
  it('every Dockerfile stage is based on the Node version the second CI step runs', () => {
    const version = scriptVariable('NODE_LTS_VERSION');
    const bases = [...read('Dockerfile').matchAll(/^FROM (\S+)/gm)].map((match) => match[1]);
    expect(bases).to.deep.equal([`node:${version}-bookworm`, `node:${version}-bookworm-slim`]);
  });

  it('the image installs the better-sqlite3 version CI tests on that runtime', () => {
    const version = scriptVariable('BETTER_SQLITE3_LTS_VERSION');
    expect(read('Dockerfile')).to.include(`better-sqlite3@${version}`);
  });

  it('.ci/run runs the suite on the machine Node, then on the LTS', () => {
    const steps = read('.ci/run')
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#') && !/^(set|cd) /.test(line));
    expect(steps).to.deep.equal(['npm ci', 'npm test', 'bash test/setup/node-lts.sh']);
  });
});
