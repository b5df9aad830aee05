import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { loadOciConfig } from '../../../src/oci/config.js';

describe('registry config: S3 storage (REGISTRY_STORAGE_URL)', () => {
  it('keeps filesystem storage when no storage URL is set', () => {
    expect(loadOciConfig({}).s3).to.equal(undefined);
  });

  it('parses bucket, prefix, endpoint, region, path style and inline credentials', () => {
    const { s3 } = loadOciConfig({
      REGISTRY_STORAGE_URL: 's3://my-bucket/registry/prod/',
      REGISTRY_S3_ENDPOINT: 'http://127.0.0.1:9000',
      REGISTRY_S3_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'id',
      AWS_SECRET_ACCESS_KEY: 'secret',
    });
    expect(s3).to.deep.equal({
      bucket: 'my-bucket',
      prefix: 'registry/prod',
      endpoint: 'http://127.0.0.1:9000',
      region: 'eu-west-1',
      forcePathStyle: true, // default with a custom endpoint
      credentials: { accessKeyId: 'id', secretAccessKey: 'secret' },
    });
    const aws = loadOciConfig({
      REGISTRY_STORAGE_URL: 's3://bucket',
      REGISTRY_S3_FORCE_PATH_STYLE: 'false',
    }).s3;
    expect(aws).to.include({ prefix: '', endpoint: undefined, region: 'us-east-1', forcePathStyle: false });
    expect(aws?.credentials).to.equal(undefined);
  });

  it('reads credentials from _FILE variants (mounted Secrets), trimmed', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 's3-config-'));
    try {
      await fs.writeFile(path.join(dir, 'id'), 'file-id\n');
      await fs.writeFile(path.join(dir, 'secret'), 'file-secret\n');
      const { s3 } = loadOciConfig({
        REGISTRY_STORAGE_URL: 's3://bucket/p',
        AWS_ACCESS_KEY_ID: 'ignored',
        AWS_ACCESS_KEY_ID_FILE: path.join(dir, 'id'),
        AWS_SECRET_ACCESS_KEY_FILE: path.join(dir, 'secret'),
      });
      expect(s3?.credentials).to.deep.equal({ accessKeyId: 'file-id', secretAccessKey: 'file-secret' });
      expect(() =>
        loadOciConfig({
          REGISTRY_STORAGE_URL: 's3://bucket',
          AWS_ACCESS_KEY_ID_FILE: path.join(dir, 'nope'),
        }),
      ).to.throw(/AWS_ACCESS_KEY_ID_FILE names a file that cannot be read/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses malformed URLs, bucket names, endpoints and half a key pair, naming the variable', () => {
    const bad: Array<[Record<string, string>, RegExp]> = [
      [{ REGISTRY_STORAGE_URL: 'file:///data' }, /REGISTRY_STORAGE_URL must be s3:\/\/BUCKET\/PREFIX/],
      [{ REGISTRY_STORAGE_URL: 's3://Bad_Bucket/x' }, /invalid bucket name/],
      [{ REGISTRY_STORAGE_URL: 's3://bucket/../x' }, /must not contain/],
      [
        { REGISTRY_STORAGE_URL: 's3://bucket', REGISTRY_S3_ENDPOINT: 'localhost:9000' },
        /REGISTRY_S3_ENDPOINT/,
      ],
      [{ REGISTRY_STORAGE_URL: 's3://bucket', AWS_ACCESS_KEY_ID: 'id' }, /AWS_SECRET_ACCESS_KEY must be set/],
    ];
    for (const [env, message] of bad) expect(() => loadOciConfig(env), JSON.stringify(env)).to.throw(message);
  });
});
