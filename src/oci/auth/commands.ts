/**
 * The token-mode CLI under `registry`: robot accounts (`robot create|list|rotate|delete`),
 * `quota show` and `token-key rotate`. They work on the storage directly (the directory or the
 * S3 bucket of `--storage-url`, as `gc` does), so they run beside a serving registry, which picks
 * the changes up within seconds. What they do is in `command-actions.ts`, imported when one runs.
 */
import type { Command } from 'commander';
import type { Env } from '../../shared/config/env.js';
import type { RootOptions } from './command-actions.js';

const actions = () => import('./command-actions.js');

/** Adds `robot`, `quota` and `token-key` under the `registry` command. */
export function addTokenModeCommands(registry: Command, env: Env): void {
  const storageRoot = '--storage-root <dir>';
  const storageHelp = 'storage directory (env REGISTRY_STORAGE_ROOT, default ./data/registry)';
  const storageUrl = '--storage-url <url>';
  const storageUrlHelp = "s3://BUCKET/PREFIX: the registry's S3 storage instead (env REGISTRY_STORAGE_URL)";
  const fail = async (command: Command, error: unknown): Promise<never> => {
    if ((await actions()).isRobotError(error)) return command.error(`error: ${(error as Error).message}`);
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
      try {
        await (await actions()).createRobot(env, options);
      } catch (error) {
        await fail(this, error);
      }
    });
  robot
    .command('list')
    .description('List robot accounts with namespace, actions, expiry and last use')
    .option('--json', 'one JSON array')
    .option(storageRoot, storageHelp)
    .option(storageUrl, storageUrlHelp)
    .action(async function (this: Command) {
      await (await actions()).listRobots(env, this.optsWithGlobals<RootOptions & { json?: boolean }>());
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
        await (await actions()).rotateRobot(env, options);
      } catch (error) {
        await fail(this, error);
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
        await (await actions()).deleteRobot(env, options);
      } catch (error) {
        await fail(this, error);
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
      await (await actions()).showQuotas(env, this.optsWithGlobals<RootOptions>());
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
      await (await actions()).rotateTokenKey(env, this.optsWithGlobals<RootOptions>());
    });
}
