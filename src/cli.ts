#!/usr/bin/env node
/**
 * The one entry point: `serve` (catalog API), `registry` (bundled OCI registry), `gc` (registry
 * garbage collection). Only this file hands `process.env` to the config loaders.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { createToken, ROLES, type Role } from './catalog/access/tokens.js';
import { ConfigError } from './shared/config/env.js';
import { ListenError } from './shared/server.js';
import { CATALOG_ENV_VARS } from './catalog/config.js';
import { HEALTH_ENV_VARS } from './catalog/health/config.js';
import { MONITOR_ENV_VARS } from './catalog/jobs/config.js';
import { WEBHOOK_ENV_VARS } from './catalog/jobs/webhook-config.js';
import { CRAWL_ENV_VARS } from './catalog/jobs/crawl-config.js';
import { HEARTBEAT_WATCH_ENV_VARS } from './catalog/jobs/heartbeat-config.js';
import { REGISTRY_ENV_VARS } from './oci/config.js';
import { addTokenModeCommands } from './oci/auth/commands.js';

const program = new Command()
  .name('aios-registry-catalog')
  .description('AIOS container registry catalog, its health checker, and a bundled OCI registry')
  .version(packageVersion(), '-V, --version', 'print the version and exit')
  .showHelpAfterError();

/** The version in package.json, which sits one level above both src/cli.ts and dist/cli.js. */
function packageVersion(): string {
  return (
    JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  ).version;
}

program
  .command('serve')
  .description('Serve the catalog API (embedded store by default, MongoDB when MONGODB_URI is set)')
  .option('--host <host>', 'listen address (env HOST)')
  .option('--port <port>', 'listen port (env PORT)')
  .option(
    '--allow-unauthenticated',
    'listen on a non-loopback address without API tokens (env ALLOW_UNAUTHENTICATED)',
  )
  .addHelpText(
    'after',
    `\nEnvironment variables: ${[...CATALOG_ENV_VARS, ...HEALTH_ENV_VARS, ...MONITOR_ENV_VARS, ...CRAWL_ENV_VARS, ...HEARTBEAT_WATCH_ENV_VARS, ...WEBHOOK_ENV_VARS].join(', ')}`,
  )
  .action(async (options: { host?: string; port?: string; allowUnauthenticated?: boolean }) => {
    const { runCatalog } = await import('./catalog/main.js');
    await runCatalog({
      ...process.env,
      ...definedOnly({
        HOST: options.host,
        PORT: options.port,
        ALLOW_UNAUTHENTICATED: options.allowUnauthenticated ? 'true' : undefined,
      }),
    });
  });

program
  .command('rotate-credentials')
  .description(
    'Re-encrypt every stored registry credential with the first key of CREDENTIALS_KEYS (same store settings as serve)',
  )
  .option('--dry-run', 'report what would be re-encrypted, change nothing')
  .action(async (options: { dryRun?: boolean }) => {
    const { runRotateCredentials } = await import('./catalog/main.js');
    const complete = await runRotateCredentials(process.env, { dryRun: options.dryRun === true });
    if (!complete) process.exitCode = 1;
  });

program
  .command('backup')
  .description(
    'Copy the embedded store (DATA_DIR/catalog.db) to FILE with SQLite online backup, safe while serving; other files of DATA_DIR go to FILE.files/',
  )
  .requiredOption('--to <file>', 'the backup file to create (must not exist)')
  .action(async (options: { to: string }) => {
    const { runBackup } = await import('./catalog/main.js');
    await runBackup(process.env, options.to);
  });

program
  .command('token')
  .description('Manage API tokens for the catalog')
  .command('create')
  .description('Print a new API token and the API_TOKENS entry that admits it (only its hash)')
  .requiredOption('--name <name>', 'who the token is for (letters, digits, . _ -)')
  .addOption(new Option('--role <role>', 'what it may do').choices(ROLES).makeOptionMandatory())
  .option('--expires <date>', 'ISO 8601 date or time after which it is refused')
  .action(function (this: Command, options: { name: string; role: Role; expires?: string }) {
    const expires = options.expires === undefined ? undefined : new Date(options.expires);
    if (expires !== undefined && Number.isNaN(expires.getTime()))
      this.error(`error: --expires is not an ISO 8601 date: ${options.expires}`);
    let created: { token: string; entry: string };
    try {
      created = createToken(options.name, options.role, expires);
    } catch (error) {
      return this.error(`error: ${(error as Error).message}`);
    }
    const { token, entry } = created;
    process.stdout.write(`token: ${token}\nentry: ${entry}\n`);
    process.stderr.write(
      'Give the token to its user (it is not stored anywhere); add the entry to API_TOKENS or the API_TOKENS_FILE.\n',
    );
  });

const registry = program
  .command('registry')
  .description('Serve the bundled OCI registry (OCI Distribution Specification v1.1)')
  .option('--host <host>', 'listen address (env REGISTRY_HOST, default 0.0.0.0)')
  .option('--port <port>', 'listen port (env REGISTRY_PORT, default 5000)')
  .option('--storage-root <dir>', 'storage directory (env REGISTRY_STORAGE_ROOT, default ./data/registry)')
  .option('--storage-url <url>', 's3://BUCKET/PREFIX: store content in S3 instead (env REGISTRY_STORAGE_URL)')
  .option('--htpasswd <file>', 'require Basic auth from this htpasswd file (env REGISTRY_HTPASSWD)')
  .option('--auth-config <file>', 'token mode: namespaces, robots, quotas (env REGISTRY_AUTH_CONFIG)')
  .option('--read-only', 'refuse pushes and deletes (env REGISTRY_READ_ONLY)')
  .option(
    '--proxy <prefix=url>',
    'pull-through cache: serve PREFIX<name> from upstream URL <name>; repeatable (env REGISTRY_PROXY=prefix=url,...)',
    collect,
    [],
  )
  .option(
    '--proxy-config <file>',
    'per-upstream credentials, ttl_seconds, max_stale_seconds, upstream_timeout_ms (YAML/JSON; env REGISTRY_PROXY_CONFIG)',
  )
  .option(
    '--register-with <url>',
    'register with this catalog, heartbeat and send push/delete events (env REGISTRY_REGISTER_WITH)',
  )
  .option(
    '--register-token-file <file>',
    'catalog API token (register role) for --register-with (env REGISTRY_REGISTER_TOKEN_FILE)',
  )
  .option(
    '--public-url <url>',
    'URL clients reach this registry at, stored in the catalog (env REGISTRY_PUBLIC_URL)',
  )
  .option(
    '--register-name <name>',
    'catalog entry name (env REGISTRY_REGISTER_NAME, default: the public URL host)',
  )
  .option('--register-tags <tags>', 'comma-separated catalog entry tags (env REGISTRY_REGISTER_TAGS)')
  .addHelpText('after', `\nEnvironment variables: ${REGISTRY_ENV_VARS.join(', ')}`)
  .action(
    async (options: {
      host?: string;
      port?: string;
      storageRoot?: string;
      storageUrl?: string;
      htpasswd?: string;
      authConfig?: string;
      readOnly?: boolean;
      proxy: string[];
      proxyConfig?: string;
      registerWith?: string;
      registerTokenFile?: string;
      publicUrl?: string;
      registerName?: string;
      registerTags?: string;
    }) => {
      const { runRegistry } = await import('./oci/main.js');
      await runRegistry({
        ...process.env,
        ...definedOnly({
          REGISTRY_HOST: options.host,
          REGISTRY_PORT: options.port,
          REGISTRY_STORAGE_ROOT: options.storageRoot,
          REGISTRY_STORAGE_URL: options.storageUrl,
          REGISTRY_HTPASSWD: options.htpasswd,
          REGISTRY_AUTH_CONFIG: options.authConfig,
          REGISTRY_READ_ONLY: options.readOnly ? 'true' : undefined,
          REGISTRY_PROXY: options.proxy.length > 0 ? options.proxy.join(',') : undefined,
          REGISTRY_PROXY_CONFIG: options.proxyConfig,
          REGISTRY_REGISTER_WITH: options.registerWith,
          REGISTRY_REGISTER_TOKEN_FILE: options.registerTokenFile,
          REGISTRY_PUBLIC_URL: options.publicUrl,
          REGISTRY_REGISTER_NAME: options.registerName,
          REGISTRY_REGISTER_TAGS: options.registerTags,
        }),
      });
    },
  );

addTokenModeCommands(registry, process.env);
const htpasswd = registry
  .command('htpasswd')
  .description('Manage the users of an htpasswd file (Basic auth)');
htpasswd
  .command('add')
  .description(
    'Add a user, or set a new password for one, in an htpasswd file (bcrypt); the password is read from standard input, or asked for twice at a terminal',
  )
  .argument('<user>', 'user name (no spaces or ":")')
  .option('--file <file>', 'htpasswd file, created with mode 0600 when missing', 'htpasswd')
  .action(async function (this: Command, user: string, options: { file: string }) {
    const { addHtpasswdUser, readPassword, HtpasswdInputError } = await import('./oci/htpasswd-file.js');
    try {
      const { replaced } = addHtpasswdUser(options.file, user, await readPassword());
      process.stderr.write(`${replaced ? 'updated' : 'added'} ${user} in ${options.file}\n`);
    } catch (error) {
      if (error instanceof HtpasswdInputError) return this.error(`error: ${error.message}`);
      throw error;
    }
  });

program
  .command('gc')
  .description('Remove registry blobs and manifests no longer reachable from any tag (safe while serving)')
  .option('--storage-root <dir>', 'storage directory (env REGISTRY_STORAGE_ROOT, default ./data/registry)')
  .option('--storage-url <url>', 's3://BUCKET/PREFIX: store content in S3 instead (env REGISTRY_STORAGE_URL)')
  .option('--dry-run', 'print what would be removed, remove nothing')
  .option(
    '--grace-period <seconds>',
    'keep anything newer than this, to protect pushes in flight (env REGISTRY_GC_GRACE_PERIOD_SECONDS, default 3600)',
  )
  .option('--proxy <prefix=url>', 'pull-through cache prefixes, as for registry (TTL eviction)', collect, [])
  .option('--proxy-config <file>', 'pull-through cache settings file, as for registry')
  .option(
    '--proxy-max-bytes <bytes>',
    'keep at most this much proxied content, least recently pulled goes first (env REGISTRY_PROXY_MAX_BYTES)',
  )
  .action(async (options: GcCliOptions) => {
    const { runGc } = await import('./oci/main.js');
    await runGc(
      {
        ...process.env,
        ...definedOnly({
          REGISTRY_STORAGE_ROOT: options.storageRoot,
          REGISTRY_STORAGE_URL: options.storageUrl,
          REGISTRY_GC_GRACE_PERIOD_SECONDS: options.gracePeriod,
          REGISTRY_PROXY: options.proxy.length > 0 ? options.proxy.join(',') : undefined,
          REGISTRY_PROXY_CONFIG: options.proxyConfig,
          REGISTRY_PROXY_MAX_BYTES: options.proxyMaxBytes,
        }),
      },
      { dryRun: options.dryRun === true },
    );
  });

/** Accumulates a repeatable option. */
function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

interface GcCliOptions {
  storageRoot?: string;
  storageUrl?: string;
  dryRun?: boolean;
  gracePeriod?: string;
  proxy: string[];
  proxyConfig?: string;
  proxyMaxBytes?: string;
}

/** Flags override environment variables; an unset flag leaves the variable alone. */
function definedOnly(values: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(values).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}

// The client of a running catalog (registries, health, images): src/client/, over its JSON API.
const { addClientCommands } = await import('./client/commands.js');
addClientCommands(program, process.env);

program.parseAsync().catch((error: unknown) => {
  if (error instanceof ConfigError || error instanceof ListenError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  // A damaged embedded database (sqlite-integrity.ts): one sentence saying what to do.
  if (error instanceof Error && error.name === 'StoreIntegrityError') {
    process.stderr.write(`${error.message}\n`);
    process.exit(3);
  }
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
