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
type Actions = Awaited<ReturnType<typeof actions>>;

/** Adds `robot`, `quota` and `token-key` under the `registry` command. */
export function addTokenModeCommands(registry: Command, env: Env): void {
  /** Adds the storage options every one of these commands takes. */
  const onStorage = (command: Command) =>
    command
      .option(
        '--storage-root <dir>',
        'storage directory (env REGISTRY_STORAGE_ROOT, default ./data/registry)',
      )
      .option(
        '--storage-url <url>',
        "s3://BUCKET/PREFIX: the registry's S3 storage instead (env REGISTRY_STORAGE_URL)",
      );
  /** The command's action: `act` with its options; a robot error is printed as the command's error. */
  const run = <T extends RootOptions>(act: (loaded: Actions, options: T) => Promise<void>) =>
    async function (this: Command) {
      const loaded = await actions();
      try {
        await act(loaded, this.optsWithGlobals<T>());
      } catch (error) {
        if (loaded.isRobotError(error)) this.error(`error: ${(error as Error).message}`);
        throw error;
      }
    };

  const robot = registry.command('robot').description('Robot accounts for CI (token mode)');
  onStorage(
    robot
      .command('create')
      .description('Create robot_NAME and print its secret (shown once, stored hashed)')
      .requiredOption('--name <name>', 'robot name: 1-63 of a-z 0-9 . _ - (the account is robot_NAME)')
      .requiredOption('--namespace <prefix>', 'repository prefix it may act in, e.g. home/alice/')
      .requiredOption('--actions <list>', 'comma-separated: pull, push, delete')
      .option('--expires-days <days>', 'refuse it after this many days (default: never)'),
  ).action(
    run<RootOptions & { name: string; namespace: string; actions: string; expiresDays?: string }>(
      (loaded, options) => loaded.createRobot(env, options),
    ),
  );
  onStorage(
    robot
      .command('list')
      .description('List robot accounts with namespace, actions, expiry and last use')
      .option('--json', 'one JSON array'),
  ).action(run<RootOptions & { json?: boolean }>((loaded, options) => loaded.listRobots(env, options)));
  onStorage(
    robot
      .command('rotate')
      .description('Give a robot a new secret (printed once); the old one stops working')
      .requiredOption('--name <name>', 'robot name (with or without robot_)'),
  ).action(run<RootOptions & { name: string }>((loaded, options) => loaded.rotateRobot(env, options)));
  onStorage(
    robot
      .command('delete')
      .description('Delete a robot account')
      .requiredOption('--name <name>', 'robot name (with or without robot_)'),
  ).action(run<RootOptions & { name: string }>((loaded, options) => loaded.deleteRobot(env, options)));

  onStorage(
    registry
      .command('quota')
      .description('Storage quotas of namespaces (token mode)')
      .command('show')
      .description('Print bytes used and reserved per namespace, with its quota'),
  )
    .option('--auth-config <file>', 'the token-mode config (env REGISTRY_AUTH_CONFIG)')
    .action(run((loaded, options) => loaded.showQuotas(env, options)));

  onStorage(
    registry
      .command('token-key')
      .description('The generated token signing key (token mode without signing_key_file)')
      .command('rotate')
      .description('Replace the generated key; tokens it signed stay valid until they expire'),
  )
    .option('--auth-config <file>', 'the token-mode config (env REGISTRY_AUTH_CONFIG)')
    .action(run((loaded, options) => loaded.rotateTokenKey(env, options)));
}
