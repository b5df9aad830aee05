#!/usr/bin/env node
/**
 * The one entry point: `serve` (catalog API), `registry` (bundled OCI registry), `gc` (registry
 * garbage collection). Only this file hands `process.env` to the config loaders.
 */
import { Command } from 'commander';
import { ConfigError } from './shared/config/env.js';
import { CATALOG_ENV_VARS } from './shared/config/catalog.js';

const program = new Command()
  .name('aios-registry-catalog')
  .description('AIOS container registry catalog, its health checker, and a bundled OCI registry')
  .showHelpAfterError();

program
  .command('serve')
  .description('Serve the catalog API (embedded store by default, MongoDB when MONGODB_URI is set)')
  .option('--host <host>', 'listen address (env HOST)')
  .option('--port <port>', 'listen port (env PORT)')
  .addHelpText('after', `\nEnvironment variables: ${CATALOG_ENV_VARS.join(', ')}`)
  .action(async (options: { host?: string; port?: string }) => {
    const { runCatalog } = await import('./catalog/main.js');
    await runCatalog({ ...process.env, ...definedOnly({ HOST: options.host, PORT: options.port }) });
  });

/** Flags override environment variables; an unset flag leaves the variable alone. */
function definedOnly(values: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

program.parseAsync().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
