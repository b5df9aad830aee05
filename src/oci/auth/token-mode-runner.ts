/**
 * Start-up and reload of token mode for the `registry` entry point: loads the config file, and
 * applies a changed file on SIGHUP or when it changes on disk (a Kubernetes ConfigMap update),
 * keeping the old configuration when the new one is invalid.
 */
import { unwatchFile, watchFile } from 'node:fs';
import { ConfigError } from '../../shared/config/env.js';
import type { Logger } from '../../shared/logger.js';
import type { StorageDriver } from '../storage/driver.js';
import { AUTH_CONFIG_VARIABLE, loadAuthConfig } from './auth-config.js';
import { configFingerprint, TokenMode } from './token-mode.js';

/** How often the config file's mtime is polled (watchFile also sees ConfigMap symlink swaps). */
const WATCH_INTERVAL_MS = 2000;

export interface RunningTokenMode {
  readonly tokenMode: TokenMode;
  /** Re-reads the file now (what SIGHUP does). */
  reload(): Promise<void>;
  stop(): Promise<void>;
}

export async function startTokenMode(options: {
  readonly file: string;
  readonly htpasswd: string | undefined;
  readonly driver: StorageDriver;
  readonly logger: Logger;
  readonly uploadTimeoutSeconds: number;
}): Promise<RunningTokenMode> {
  const { file, logger } = options;
  if (options.htpasswd !== undefined)
    throw new ConfigError(
      AUTH_CONFIG_VARIABLE,
      'and REGISTRY_HTPASSWD are both set: in token mode, put the htpasswd file in the auth config',
    );
  const config = loadAuthConfig(file);
  const tokenMode = await TokenMode.create(config, {
    driver: options.driver,
    logger,
    uploadTimeoutSeconds: options.uploadTimeoutSeconds,
  });
  logger.info(
    { service: config.service, kid: tokenMode.keys.active.kid, config: configFingerprint(config) },
    'token mode on',
  );
  let reloading = Promise.resolve();
  const reload = () => {
    reloading = reloading.then(async () => {
      try {
        const next = loadAuthConfig(file);
        await tokenMode.reload(next);
        logger.info(
          { config: configFingerprint(next), kid: tokenMode.keys.active.kid },
          'auth config reloaded',
        );
      } catch (error) {
        logger.error({ err: error }, 'auth config reload failed; the previous configuration stays in force');
      }
    });
    return reloading;
  };
  // The config file, and the htpasswd file it names (a user added or removed), both reload.
  const watched = new Set<string>();
  const reloadAndWatch = () => reload().then(() => watch(tokenMode.config.htpasswd));
  const onChange = (
    current: { mtimeMs: number; ino: number },
    previous: { mtimeMs: number; ino: number },
  ) => {
    if (current.mtimeMs !== previous.mtimeMs || current.ino !== previous.ino) void reloadAndWatch();
  };
  function watch(path: string | undefined): void {
    if (path === undefined || watched.has(path)) return;
    watched.add(path);
    watchFile(path, { interval: WATCH_INTERVAL_MS, persistent: false }, onChange);
  }
  watch(file);
  watch(config.htpasswd);
  const onHangup = () => void reloadAndWatch();
  process.on('SIGHUP', onHangup);
  return {
    tokenMode,
    reload: reloadAndWatch,
    stop: async () => {
      process.off('SIGHUP', onHangup);
      for (const path of watched) unwatchFile(path, onChange);
      await reloading;
      await tokenMode.close();
    },
  };
}
