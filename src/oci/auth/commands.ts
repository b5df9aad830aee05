/**
 * The token-mode CLI under `registry`: robot accounts (`robot create|list|rotate|delete`),
 * `quota show` and `token-key rotate`. They work on the storage directly (the directory or the
 * S3 bucket of `--storage-url`, as `gc` does), so they run beside a serving registry, which picks
 * the changes up within seconds.
 */
import type { Command } from 'commander';
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

type Out = (line: string) => void;
const stdout: Out = (line) => process.stdout.write(`${line}\n`);
const stderr: Out = (line) => process.stderr.write(`${line}\n`);

interface RootOptions {
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

/** Adds `robot`, `quota` and `token-key` under the `registry` command. */
export function addTokenModeCommands(registry: Command, env: Env): void {
  const storageRoot = '--storage-root <dir>';
  const storageHelp = 'storage directory (env REGISTRY_STORAGE_ROOT, default ./data/registry)';
  const storageUrl = '--storage-url <url>';
  const storageUrlHelp = "s3://BUCKET/PREFIX: the registry's S3 storage instead (env REGISTRY_STORAGE_URL)";
  const fail = (command: Command, error: unknown): never => {
    if (error instanceof RobotError) return command.error(`error: ${error.message}`);
    throw error;
  };

  const robot = registry.command('robot').description('Robot accounts for CI (token mode)');
  robot
    .command('create')
    .description('Create robot_NAME and print its secret (shown once, stored hashed)')
    .requiredOption('--name <name>', 'robot name: 1-63 of a-z 0-9 . _ - (the account is robot_NAME)')
    .requiredOption('--namespace <prefix>', 'repository prefix it may act in, e.g. home/alice/')
    .requiredOption('--actions <list>', 'comma-separated: pull, push, delete')
    .option('--expires-days <days>', 'refuse it after this many days (default: never)')
    .option(storageRoot, storageHelp)
    .option(storageUrl, storageUrlHelp)
    .action(async function (this: Command) {
      const options = this.optsWithGlobals<
        RootOptions & { name: string; namespace: string; actions: string; expiresDays?: string }
      >();
      const store = new RobotStore(settings(env, options).driver);
      try {
        const created = await store.create({
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
      } catch (error) {
        fail(this, error);
      }
    });
  robot
    .command('list')
    .description('List robot accounts with namespace, actions, expiry and last use')
    .option('--json', 'one JSON array')
    .option(storageRoot, storageHelp)
    .option(storageUrl, storageUrlHelp)
    .action(async function (this: Command) {
      await listRobots(env, this.optsWithGlobals<RootOptions & { json?: boolean }>());
    });
  robot
    .command('rotate')
    .description('Give a robot a new secret (printed once); the old one stops working')
    .requiredOption('--name <name>', 'robot name (with or without robot_)')
    .option(storageRoot, storageHelp)
    .option(storageUrl, storageUrlHelp)
    .action(async function (this: Command) {
      const options = this.optsWithGlobals<RootOptions & { name: string }>();
      try {
        const rotated = await new RobotStore(settings(env, options).driver).rotate(options.name);
        stdout(`account: ${rotated.account}`);
        stdout(`secret: ${rotated.secret}`);
      } catch (error) {
        fail(this, error);
      }
    });
  robot
    .command('delete')
    .description('Delete a robot account')
    .requiredOption('--name <name>', 'robot name (with or without robot_)')
    .option(storageRoot, storageHelp)
    .option(storageUrl, storageUrlHelp)
    .action(async function (this: Command) {
      const options = this.optsWithGlobals<RootOptions & { name: string }>();
      try {
        await new RobotStore(settings(env, options).driver).delete(options.name);
        stdout(`deleted robot ${options.name}`);
      } catch (error) {
        fail(this, error);
      }
    });

  registry
    .command('quota')
    .description('Storage quotas of namespaces (token mode)')
    .command('show')
    .description('Print bytes used and reserved per namespace, with its quota')
    .option(storageRoot, storageHelp)
    .option(storageUrl, storageUrlHelp)
    .option('--auth-config <file>', 'the token-mode config (env REGISTRY_AUTH_CONFIG)')
    .action(async function (this: Command) {
      await showQuotas(env, this.optsWithGlobals<RootOptions>());
    });

  registry
    .command('token-key')
    .description('The generated token signing key (token mode without signing_key_file)')
    .command('rotate')
    .description('Replace the generated key; tokens it signed stay valid until they expire')
    .option(storageRoot, storageHelp)
    .option(storageUrl, storageUrlHelp)
    .option('--auth-config <file>', 'the token-mode config (env REGISTRY_AUTH_CONFIG)')
    .action(async function (this: Command) {
      const { config, driver } = settings(env, this.optsWithGlobals<RootOptions>());
      const auth = requireAuthConfig(config.authConfig);
      const ring = await KeyRing.rotateGenerated(
        driver,
        { signingKeyFile: auth.signingKeyFile, tokenTtlSeconds: auth.tokenTtlSeconds, subject: auth.service },
        Date.now(),
      );
      stdout(`active key: ${ring.active.kid}`);
      for (const key of ring.retired) stdout(`retired key: ${key.kid} (verified until its tokens expire)`);
      stdout('Certificates for a Distribution rootcertbundle: GET /auth/certificates.pem');
    });
}
