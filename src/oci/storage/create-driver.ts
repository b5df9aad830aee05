import type { StorageDriver } from './driver.js';
import { FsDriver } from './fs-driver.js';
import { S3Driver, type S3Settings } from './s3-driver.js';

/** Where the content lives: S3 when configured, else the directory `storageRoot`. */
export interface StorageLocation {
  readonly storageRoot: string;
  readonly s3: S3Settings | undefined;
}

/** The driver for a configured location (entry points only; tests build drivers directly). */
export function createStorageDriver(location: StorageLocation): StorageDriver {
  return location.s3 === undefined ? new FsDriver(location.storageRoot) : new S3Driver(location.s3);
}

/** How logs and `gc` name the location: `s3://bucket/prefix` or the directory. */
export function describeStorage(location: StorageLocation): string {
  const { s3 } = location;
  if (s3 === undefined) return location.storageRoot;
  return `s3://${s3.bucket}${s3.prefix === '' ? '' : `/${s3.prefix}`}`;
}
