/**
 * Chunk claims on the filesystem driver: two registry processes sharing one storage directory
 * (as replicas on a shared volume would) each have their own `Uploads`; a chunk claims its offset
 * with an exclusive create, so concurrent chunks for one offset are serialized across them, a
 * failed chunk frees its offset, and a claim whose holder died is taken over after the lease.
 * (The same on S3, with two real replicas: s3-replicas.test.ts.)
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { expect } from 'chai';
import { Blobs } from '../../../src/oci/domain/blobs.js';
import { parseDigest } from '../../../src/oci/domain/names.js';
import { Uploads } from '../../../src/oci/domain/uploads.js';
import { OciError } from '../../../src/oci/errors.js';
import { FsDriver } from '../../../src/oci/storage/fs-driver.js';
import { uploadClaimPath } from '../../../src/oci/storage/layout.js';
import { tempDirPerTest } from '../../helpers/temp-dirs.js';

const digestOf = (data: Buffer) => parseDigest(`sha256:${createHash('sha256').update(data).digest('hex')}`);

/** A body that sends `data` in pieces, with pauses, so two of them are in flight together. */
function slowBody(data: Buffer): Readable {
  let at = 0;
  return new Readable({
    read() {
      setTimeout(() => {
        this.push(at < data.length ? data.subarray(at, (at += 64 * 1024)) : null);
      }, 2);
    },
  });
}

async function statusOf(promise: Promise<unknown>): Promise<number | unknown> {
  try {
    await promise;
    return 202;
  } catch (error) {
    if (error instanceof OciError) return error.status;
    throw error;
  }
}

describe('upload chunk claims across processes on one filesystem', () => {
  const dirNow = tempDirPerTest('upload-claims-');
  let clock = Date.now();
  const now = () => clock;
  let root: string;
  const replica = () => {
    const driver = new FsDriver(root);
    return new Uploads(driver, new Blobs(driver), now);
  };
  beforeEach(() => {
    root = dirNow();
    clock = Date.now();
  });

  it('takes one of two concurrent chunks for the same offset and answers the other 416', async () => {
    const [a, b] = [replica(), replica()];
    const uploadId = await a.start('claims/app');
    const chunks = [randomBytes(1024 * 1024), randomBytes(1024 * 1024)];
    const range = { start: 0, end: chunks[0]!.length - 1 };
    const statuses = await Promise.all([
      statusOf(a.append('claims/app', uploadId, slowBody(chunks[0]!), range)),
      statusOf(b.append('claims/app', uploadId, slowBody(chunks[1]!), range)),
    ]);
    expect([...statuses].sort()).to.deep.equal([202, 416]);
    const winner = chunks[statuses.indexOf(202)]!;
    const loser = chunks[statuses.indexOf(416)]!;
    // The loser's process is asked to commit its own bytes: they are not what was stored.
    const loserReplica = statuses[0] === 416 ? a : b;
    expect(await statusOf(loserReplica.finish('claims/app', uploadId, digestOf(loser)))).to.equal(400);
    const again = await a.start('claims/app');
    await b.append('claims/app', again, Readable.from([winner]), range);
    await a.finish('claims/app', again, digestOf(winner));
  });

  it('frees the offset of a chunk that failed, so the client can retry it at once', async () => {
    const [a, b] = [replica(), replica()];
    const uploadId = await a.start('claims/app');
    const broken = new Readable({ read() {} });
    // The HTTP server keeps a request's errors from going uncaught; so does this listener here.
    broken.on('error', () => undefined);
    const failing = a.append('claims/app', uploadId, broken, undefined);
    setTimeout(() => broken.destroy(new Error('client went away')), 20);
    await failing.then(
      () => expect.fail('the broken chunk succeeded'),
      (error: Error) => expect(error.message).to.equal('client went away'),
    );
    const data = randomBytes(1000);
    expect(await b.append('claims/app', uploadId, Readable.from([data]), { start: 0, end: 999 })).to.equal(
      1000,
    );
    await b.finish('claims/app', uploadId, digestOf(data));
  });

  it('takes over the claim of a holder that died once it is older than the lease', async () => {
    const b = replica();
    const uploadId = await b.start('claims/app');
    // A process killed mid-chunk left its claim at offset 0 behind (and no data).
    await new FsDriver(root).createExclusive(uploadClaimPath(uploadId, 0, 0), 'dead');
    const data = randomBytes(1000);
    const range = { start: 0, end: 999 };
    expect(await statusOf(b.append('claims/app', uploadId, Readable.from([data]), range))).to.equal(416);
    clock += 61_000;
    expect(await b.append('claims/app', uploadId, Readable.from([data]), range)).to.equal(1000);
    await b.finish('claims/app', uploadId, digestOf(data));
  });
});
