/**
 * A blob download as the proxy tests watch it: status, digest of the body, bytes, when the
 * first byte came and when it ended, and why it broke off (a cut connection, an early hang-up).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';

export interface Download {
  readonly status: number;
  readonly digest: string;
  readonly bytes: number;
  readonly firstByteAt: number;
  readonly endAt: number;
  readonly error?: string;
}

/** GETs `url`, hashing the body; `stopAfter` bytes makes the client hang up early. */
export function download(url: string, stopAfter?: number): Promise<Download> {
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let firstByteAt = 0;
    let finished = false;
    const request = http.get(url, (response) => {
      const finish = (error?: string) => {
        if (finished) return;
        finished = true;
        resolve({
          status: response.statusCode ?? 0,
          digest: `sha256:${hash.digest('hex')}`,
          bytes,
          firstByteAt,
          endAt: Date.now(),
          ...(error === undefined ? {} : { error }),
        });
      };
      response.on('data', (chunk: Buffer) => {
        if (finished) return;
        if (firstByteAt === 0) firstByteAt = Date.now();
        bytes += chunk.length;
        hash.update(chunk);
        if (stopAfter !== undefined && bytes >= stopAfter) {
          request.destroy();
          finish('client hung up');
        }
      });
      response.on('end', () => finish(response.complete ? undefined : 'incomplete'));
      response.on('error', (error) => finish(error.message));
      response.on('aborted', () => finish('aborted'));
    });
    request.on('error', (error) =>
      resolve({ status: 0, digest: '', bytes, firstByteAt, endAt: Date.now(), error: error.message }),
    );
  });
}
