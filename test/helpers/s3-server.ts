/**
 * A real S3 server on loopback for tests: gofakes3 (pinned in go-tools.ts, built once into
 * .cache/bin) on a free 127.0.0.1 port, in-memory by default. Each test gets its own bucket via
 * `bucket()`, so one server can serve a whole file. With `S3_TEST_SERVER=versitygw` in the
 * environment every caller gets Versity Gateway on a temp directory instead: a fuller S3
 * implementation (real multipart, conditional writes, checksums) that takes minutes to build, so
 * only test/stress/s3-versitygw.sh asks for it.
 */
import { randomUUID } from 'node:crypto';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { S3Driver, type S3Settings } from '../../src/oci/storage/s3-driver.js';
import { installGoTool } from './go-tools.js';
import { freePort } from './ports.js';
import { startChild, waitForHttp, type ChildHandle } from './registry.js';
import { tempDir } from './temp-dirs.js';

/** Credentials for both servers (gofakes3 checks none; versitygw's root user is started with them). */
export const S3_TEST_CREDENTIALS = { accessKeyId: 'test-access-key', secretAccessKey: 'test-secret-key' };
export const S3_TEST_REGION = 'us-east-1';

export interface TestS3Server {
  readonly endpoint: string;
  readonly handle: ChildHandle;
  /** Settings of a fresh, empty bucket on this server (created before it returns). */
  bucket(prefix?: string): Promise<S3Settings>;
  /** The registry's environment for S3 mode on `settings`. */
  registryEnv(settings: S3Settings): Record<string, string>;
  stop(): Promise<void>;
}

/** Starts gofakes3 (`backend` memory, or fs in a temp dir for large benchmark payloads), or versitygw. */
export async function startS3Server(options: { backend?: 'memory' | 'fs' } = {}): Promise<TestS3Server> {
  const port = await freePort();
  const handle =
    process.env.S3_TEST_SERVER === 'versitygw'
      ? startChild(installGoTool('versitygw'), [
          '--port',
          `127.0.0.1:${port}`,
          '--access',
          S3_TEST_CREDENTIALS.accessKeyId,
          '--secret',
          S3_TEST_CREDENTIALS.secretAccessKey,
          '--region',
          S3_TEST_REGION,
          '--quiet',
          'posix',
          await tempDir('versitygw-'),
        ])
      : startChild(installGoTool('gofakes3'), [
          '-host',
          `127.0.0.1:${port}`,
          '-backend',
          options.backend ?? 'memory',
          ...(options.backend === 'fs' ? ['-fs.path', await tempDir('gofakes3-'), '-fs.create'] : []),
        ]);
  const endpoint = `http://127.0.0.1:${port}`;
  await waitForHttp(endpoint);
  const settingsOf = (bucket: string, prefix: string): S3Settings => ({
    bucket,
    prefix,
    endpoint,
    region: S3_TEST_REGION,
    forcePathStyle: true,
    credentials: S3_TEST_CREDENTIALS,
  });
  return {
    endpoint,
    handle,
    bucket: async (prefix = '') => {
      const settings = settingsOf(`test-${randomUUID().slice(0, 8)}`, prefix);
      const driver = new S3Driver(settings);
      await driver.client.send(new CreateBucketCommand({ Bucket: settings.bucket }));
      driver.client.destroy();
      return settings;
    },
    registryEnv: (settings) => ({
      REGISTRY_STORAGE_URL: `s3://${settings.bucket}${settings.prefix === '' ? '' : `/${settings.prefix}`}`,
      REGISTRY_S3_ENDPOINT: endpoint,
      REGISTRY_S3_REGION: S3_TEST_REGION,
      REGISTRY_S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: S3_TEST_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3_TEST_CREDENTIALS.secretAccessKey,
    }),
    stop: () => handle.stop(),
  };
}
