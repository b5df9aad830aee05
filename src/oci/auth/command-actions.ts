/**
 * What the token-mode commands of `commands.ts` do: robot accounts, quotas, the generated token
 * key. Loaded only when one of them runs, so every other command of the CLI starts without the
 * storage drivers (the S3 SDK among them, most of a second).
 */
import type { Env } from '../../shared/config/env.js';
import { loadOciConfig } from '../config.js';
import { Blobs } from '../domain/blobs.js';
import { Content } from '../domain/content.js';
import { createStorageDriver } from '../storage/create-driver.js';
import { AUTH_CONFIG_VARIABLE, loadAuthConfig } from './auth-config.js';
import { ConfigError } from '../../shared/config/env.js';
import { formatBytes } from '../../shared/format-bytes.js';
import { Policy } from './policy.js';
import { QuotaLedger } from './quotas.js';
import { RobotError, RobotStore } from './robots.js';
import { KeyRing } from './signing-keys.js';

export type Out = (line: string) => void;
const stdout: Out = (line) => process.stdout.write(`${line}\n`);
const stderr: Out = (line) => process.stderr.write(`${line}\n`);

export interface RootOptions {
  storageRoot?: string;
  storageUrl?: string;
  authConfig?: string;
}

function settings(env: Env, options: RootOptions) {
  // `registry` has --storage-root and --auth-config too; commander gives them to the parent.
  const config = loadOciConfig({
    ...env,
    ...(options.storageRoot === undefined ? {} : { REGISTRY_STORAGE_ROOT: options.storageRoot }),
    ...(options.storageUrl === undefined ? {} : { REGISTRY_STORAGE_URL: options.storageUrl }),
    ...(options.authConfig === undefined ? {} : { REGISTRY_AUTH_CONFIG: options.authConfig }),
  });
  return { config, driver: createStorageDriver(config) };
}

function requireAuthConfig(file: string | undefined) {
  if (file === undefined) throw new ConfigError(AUTH_CONFIG_VARIABLE, 'is required (--auth-config FILE)');
  return loadAuthConfig(file);
}

/** Prints robots as a table (or JSON lines with `json`). */
export async function listRobots(env: Env, options: RootOptions & { json?: boolean }, out: Out = stdout) {
  const robots = await new RobotStore(settings(env, options).driver).list();
  if (options.json) {
    out(JSON.stringify(robots));
    return;
  }
  out(['ACCOUNT', 'NAMESPACE', 'ACTIONS', 'EXPIRES', 'LAST USED'].join('\t'));
  for (const robot of robots)
    out(
      [
        robot.account,
        robot.prefix,
        robot.actions.join(','),
        robot.expiresAt ?? 'never',
        robot.lastUsedAt ?? 'never',
      ].join('\t'),
    );
}

/** `registry quota show`: usage per namespace, computed from storage. */
export async function showQuotas(env: Env, options: RootOptions, out: Out = stdout) {
  const { config, driver } = settings(env, options);
  const auth = requireAuthConfig(config.authConfig);
  const ledger = new QuotaLedger(driver, new Policy(auth), Date.now, config.uploadTimeoutSeconds * 1000);
  await ledger.start(new Content(driver, new Blobs(driver)));
  out(['NAMESPACE', 'USED', 'RESERVED', 'QUOTA', 'USE'].join('\t'));
  for (const entry of ledger.usage()) {
    const total = entry.referencedBytes + entry.reservedBytes;
    out(
      [
        entry.namespace,
        `${entry.referencedBytes} (${formatBytes(entry.referencedBytes)})`,
        `${entry.reservedBytes} (${formatBytes(entry.reservedBytes)})`,
        entry.quotaBytes === undefined
          ? 'unlimited'
          : `${entry.quotaBytes} (${formatBytes(entry.quotaBytes)})`,
        entry.quotaBytes === undefined || entry.quotaBytes === 0
          ? '-'
          : `${((100 * total) / entry.quotaBytes).toFixed(1)}%`,
      ].join('\t'),
    );
  }
}

/** `robot create`: prints the account and its secret (shown once). */
export async function createRobot(
  env: Env,
  options: RootOptions & { name: string; namespace: string; actions: string; expiresDays?: string },
): Promise<void> {
  const created = await new RobotStore(settings(env, options).driver).create({
    name: options.name,
    prefix: options.namespace,
    actions: options.actions
      .split(',')
      .map((action) => action.trim())
      .filter((action) => action !== ''),
    ...(options.expiresDays === undefined ? {} : { expiresDays: Number(options.expiresDays) }),
  });
  stdout(`account: ${created.account}`);
  stdout(`secret: ${created.secret}`);
  stderr(
    `The secret is shown only now. Log in with: skopeo login --username ${created.account} --password-stdin <registry>`,
  );
}

/** `robot rotate`: a new secret, printed once. */
export async function rotateRobot(env: Env, options: RootOptions & { name: string }): Promise<void> {
  const rotated = await new RobotStore(settings(env, options).driver).rotate(options.name);
  stdout(`account: ${rotated.account}`);
  stdout(`secret: ${rotated.secret}`);
}

/** `robot delete`. */
export async function deleteRobot(env: Env, options: RootOptions & { name: string }): Promise<void> {
  await new RobotStore(settings(env, options).driver).delete(options.name);
  stdout(`deleted robot ${options.name}`);
}

/** `token-key rotate`: replaces the generated signing key. */
export async function rotateTokenKey(env: Env, options: RootOptions): Promise<void> {
  const { config, driver } = settings(env, options);
  const auth = requireAuthConfig(config.authConfig);
  const ring = await KeyRing.rotateGenerated(
    driver,
    { signingKeyFile: auth.signingKeyFile, tokenTtlSeconds: auth.tokenTtlSeconds, subject: auth.service },
    Date.now(),
  );
  stdout(`active key: ${ring.active.kid}`);
  for (const key of ring.retired) stdout(`retired key: ${key.kid} (verified until its tokens expire)`);
  stdout('Certificates for a Distribution rootcertbundle: GET /auth/certificates.pem');
}

/** A robot refusal as the command's one-line error; anything else is rethrown. */
export function isRobotError(error: unknown): error is RobotError {
  return error instanceof RobotError;
}
