/**
 * The names and digests of the image records `index.ts` loads, shared with the benches that
 * query a data directory it filled (`resolve-loop.ts`): repository `r` of team `r mod 20`, tag
 * `v<t>`, digest `sha256(r:t)`; every 10th repository's `v0` an index of two platform images.
 */
import { createHash } from 'node:crypto';

const TEAMS = 'abcdefghijklmnopqrst';

export const sha = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;
export const repositoryName = (r: number) => `team-${TEAMS[r % TEAMS.length]}/app-${r}`;
/** The digest of repository `r`'s tag `v<t>` (the same in every registry). */
export const imageDigest = (r: number, t: number) => sha(`${r}:${t}`);
export const isIndex = (r: number, t: number) => r % 10 === 0 && t === 0;
export const childDigest = (r: number, arch: string) => sha(`${r}:0:${arch}`);
/** The repository of request `n`: a stride through all of them, each visited once per cycle. */
export const pick = (n: number, repositories: number) => (n * 7919) % repositories;
