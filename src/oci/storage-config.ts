/**
 * Where the registry stores its content: a directory (`REGISTRY_STORAGE_ROOT`, the default) or
 * an S3 bucket (`REGISTRY_STORAGE_URL=s3://BUCKET/PREFIX`, DESIGN section 11). Part of the config
 * module: read once from the environment, validated, frozen.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, readBool, readOptionalString, readString, type Env } from '../shared/config/env.js';

/** Where and how to reach the bucket (from `--storage-url s3://BUCKET/PREFIX` and REGISTRY_S3_*). */
export interface S3Settings {
  readonly bucket: string;
  /** Key prefix without leading or trailing slash; '' for the bucket root. */
  readonly prefix: string;
  /** Endpoint URL of an S3-compatible server; undefined for AWS. */
  readonly endpoint: string | undefined;
  readonly region: string;
  readonly forcePathStyle: boolean;
  /** Static credentials; undefined uses the SDK's default chain (instance roles, web identity). */
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string } | undefined;
}

/** The variables of S3 mode, for `--help` and the manifest consistency test. */
export const STORAGE_ENV_VARS = [
  'REGISTRY_STORAGE_URL',
  'REGISTRY_S3_ENDPOINT',
  'REGISTRY_S3_REGION',
  'REGISTRY_S3_FORCE_PATH_STYLE',
  'AWS_ACCESS_KEY_ID',
  'AWS_ACCESS_KEY_ID_FILE',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SECRET_ACCESS_KEY_FILE',
] as const;

/** A bucket name S3 accepts (3-63 characters of lowercase letters, digits, dots and dashes). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** A value inline (`NAME`) or in a file (`NAME_FILE`, a mounted Secret); the file wins, trimmed. */
function readSecret(env: Env, name: string): string | undefined {
  const file = readOptionalString(env, `${name}_FILE`);
  if (file === undefined) return readOptionalString(env, name);
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new ConfigError(
      `${name}_FILE`,
      `names a file that cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}

/** The S3 settings when `REGISTRY_STORAGE_URL` is set, else undefined (filesystem storage). */
export function readS3Settings(env: Env): S3Settings | undefined {
  const url = readOptionalString(env, 'REGISTRY_STORAGE_URL');
  if (url === undefined) return undefined;
  const match = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (match === null)
    throw new ConfigError('REGISTRY_STORAGE_URL', `must be s3://BUCKET/PREFIX, got "${url}"`);
  const bucket = match[1] ?? '';
  if (!BUCKET.test(bucket))
    throw new ConfigError('REGISTRY_STORAGE_URL', `has an invalid bucket name "${bucket}"`);
  const prefix = (match[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix.split('/').some((part) => part === '.' || part === '..')) {
    throw new ConfigError('REGISTRY_STORAGE_URL', 'prefix must not contain . or .. segments');
  }
  const endpoint = readOptionalString(env, 'REGISTRY_S3_ENDPOINT');
  if (endpoint !== undefined && !/^https?:\/\/[^/]+/.test(endpoint)) {
    throw new ConfigError('REGISTRY_S3_ENDPOINT', `must be an http(s) URL, got "${endpoint}"`);
  }
  const accessKeyId = readSecret(env, 'AWS_ACCESS_KEY_ID');
  const secretAccessKey = readSecret(env, 'AWS_SECRET_ACCESS_KEY');
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new ConfigError(
      accessKeyId === undefined ? 'AWS_ACCESS_KEY_ID' : 'AWS_SECRET_ACCESS_KEY',
      'must be set together with its pair (or neither, for the default credential chain)',
    );
  }
  return Object.freeze({
    bucket,
    prefix,
    endpoint,
    region: readString(env, 'REGISTRY_S3_REGION', 'us-east-1'),
    // Path style is what S3-compatible servers (MinIO, SeaweedFS, Ceph) expect at a custom endpoint.
    forcePathStyle: readBool(env, 'REGISTRY_S3_FORCE_PATH_STYLE', endpoint !== undefined),
    credentials:
      accessKeyId === undefined || secretAccessKey === undefined
        ? undefined
        : Object.freeze({ accessKeyId, secretAccessKey }),
  });
}
