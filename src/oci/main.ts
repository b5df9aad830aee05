/**
 * Entry points of the `registry` and `gc` subcommands. The CLI turns flags into environment
 * overrides and passes the environment record; nothing here reads `process.env`.
 */
import fs from 'node:fs/promises';
import type { Env } from '../shared/config/env.js';
import { loadOciConfig } from './config.js';
import { createLogger } from '../shared/logger.js';
import { isLoopbackHost } from '../shared/loopback.js';
import { listen, onShutdownSignal, type RunningServer } from '../shared/server.js';
import { createOciApp } from './app.js';
import { startTokenMode } from './auth/token-mode-runner.js';
import { Blobs } from './domain/blobs.js';
import { Content } from './domain/content.js';
import { collectGarbage } from './domain/gc.js';
import { evictExpired, evictOverCap, upstreamOf } from './proxy/evict.js';
import { createStorageDriver, describeStorage } from './storage/create-driver.js';
import { formatBytes } from '../shared/format-bytes.js';
import { defaultInstanceId, Registrar } from './registration/registrar.js';

/** Starts the registry, purges abandoned uploads, and stops gracefully on SIGTERM/SIGINT. */
export async function runRegistry(env: Env): Promise<RunningServer> {
  const config = loadOciConfig(env);
  const logger = createLogger('registry', config.logLevel);
  if (config.s3 === undefined) await fs.mkdir(config.storageRoot, { recursive: true });
  const driver = createStorageDriver(config);
  // Refuse to start on storage we cannot use (a missing bucket would read as empty) before
  // token mode reads its robots and signing keys from it.
  await driver.checkAccess?.();
  const token =
    config.authConfig === undefined
      ? undefined
      : await startTokenMode({
          file: config.authConfig,
          htpasswd: config.htpasswd,
          driver,
          logger,
          uploadTimeoutSeconds: config.uploadTimeoutSeconds,
        });
  // Self-registration (--register-with): events are queued from the first push on.
  let registrar: Registrar | undefined;
  const app = createOciApp({
    config,
    logger,
    driver,
    tokenMode: token?.tokenMode,
    ...(config.registration === undefined ? {} : { onContentEvent: (event) => registrar?.enqueue(event) }),
  });
  // Like the catalog's warning about missing tokens: said before listening, so a failed listen still shows it.
  // Token mode (--auth-config) is authentication too: its namespaces decide who may do what.
  if (config.htpasswd === undefined && config.authConfig === undefined && !isLoopbackHost(config.host))
    logger.warn(
      { host: config.host },
      `no authentication configured (--htpasswd): anyone who can connect may pull${config.readOnly ? '' : ', push and delete'}`,
    );
  const server = await listen(app.handler, {
    host: config.host,
    port: config.port,
    logger,
    timeouts: {
      headersTimeoutMs: config.headersTimeoutMs,
      requestTimeoutMs: config.requestTimeoutMs,
      keepAliveTimeoutMs: 5_000,
    },
  });
  logger.info(
    {
      url: server.url,
      port: server.port,
      storage: describeStorage(config),
      readOnly: config.readOnly,
      auth: config.authConfig !== undefined ? 'token' : config.htpasswd !== undefined ? 'htpasswd' : 'none',
      ...(config.upstreams.length === 0
        ? {}
        : { proxies: config.upstreams.map((upstream) => `${upstream.prefix}=${upstream.url}`) }),
    },
    'registry listening',
  );
  if (config.registration !== undefined) {
    registrar = new Registrar({
      config: config.registration,
      driver,
      storageRoot: config.s3 === undefined ? config.storageRoot : undefined,
      logger,
      metrics: app.metrics.registry,
      instanceId: defaultInstanceId(server.port),
    });
    registrar.start(app.services.content);
  }
  app.purgeStaleUploads().catch((error: unknown) => logger.error({ err: error }, 'upload purge failed'));
  onShutdownSignal(logger, async () => {
    await registrar?.stop();
    app.close();
    await token?.stop();
    // Keep-alive connections that finish their last request during the drain become idle only
    // then; close them as they do instead of waiting for the keep-alive timeout.
    const reaper = setInterval(() => server.server.closeIdleConnections(), 100);
    try {
      await server.close(config.shutdownTimeoutMs);
    } finally {
      clearInterval(reaper);
    }
    // Files of manifests already answered, written after the answer (pull-through-cache.ts).
    await app.proxy?.settled();
  });
  return server;
}

/** Options of `gc`. */
export interface GcFlags {
  readonly dryRun: boolean;
  /** Overrides REGISTRY_GC_GRACE_PERIOD_SECONDS. */
  readonly gracePeriodSeconds?: number;
}

/**
 * Runs garbage collection on the storage root and prints progress and the result (one line per
 * removed item, then a summary) to `out`. Returns the report.
 */
export async function runGc(
  env: Env,
  flags: GcFlags,
  out: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
) {
  const config = loadOciConfig(env);
  const gracePeriodSeconds = flags.gracePeriodSeconds ?? config.gcGracePeriodSeconds;
  const verb = flags.dryRun ? 'would remove' : 'removed';
  out(
    `gc: storage ${describeStorage(config)}, grace period ${gracePeriodSeconds}s${flags.dryRun ? ', dry run' : ''}`,
  );
  const driver = createStorageDriver(config);
  if (config.upstreams.length > 0) {
    const repositories = await new Content(driver, new Blobs(driver)).repositories();
    const evicted = await evictExpired(driver, config.upstreams, repositories, { dryRun: flags.dryRun });
    for (const item of evicted.tags) out(`${verb} cached tag ${item.repository}:${item.tag} (TTL)`);
    for (const item of evicted.manifests)
      out(`${verb} cached manifest ${item.repository}@${item.digest} (TTL)`);
    for (const item of evicted.layerLinks)
      out(`${verb} cached blob link ${item.repository}@${item.digest} (TTL)`);
    if (config.proxyMaxBytes !== undefined) {
      const capped = await evictOverCap(driver, config.upstreams, repositories, config.proxyMaxBytes, {
        dryRun: flags.dryRun,
      });
      for (const item of capped.tags) out(`${verb} cached tag ${item.repository}:${item.tag} (size cap)`);
      for (const item of capped.manifests)
        out(`${verb} cached manifest ${item.repository}@${item.digest} (size cap)`);
      for (const item of capped.layerLinks)
        out(`${verb} cached blob link ${item.repository}@${item.digest} (size cap)`);
    }
  }
  const report = await collectGarbage(driver, {
    dryRun: flags.dryRun,
    gracePeriodMs: gracePeriodSeconds * 1000,
    keepRepository: (name) => upstreamOf(config.upstreams, name) !== undefined,
    progress: (message, details) => {
      if (message === 'scanning repositories') out(`gc: scanning ${String(details?.count)} repositories`);
      else if (message === 'repository done') out(`gc: marked ${String(details?.repository)}`);
      else if (message === 'sweeping blobs') out('gc: sweeping blobs');
    },
  });
  for (const item of report.manifestsRemoved) out(`${verb} manifest ${item.repository}@${item.digest}`);
  for (const item of report.layerLinksRemoved) out(`${verb} blob link ${item.repository}@${item.digest}`);
  for (const item of report.blobsRemoved) out(`${verb} blob ${item.digest} (${formatBytes(item.size)})`);
  out(
    `gc: ${report.repositories} repositories, ${report.manifestsKept} manifests kept; ${verb} ` +
      `${report.manifestsRemoved.length} manifests, ${report.layerLinksRemoved.length} blob links, ` +
      `${report.blobsRemoved.length} blobs, ${formatBytes(report.bytesFreed)} ${flags.dryRun ? 'would be freed' : 'freed'}`,
  );
  return report;
}
